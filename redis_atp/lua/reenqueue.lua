-- reenqueue.lua: a task goes back to ACCEPTED at the tail of the queue, ignoring
-- the size limit (reenqueueTask); a task already queued keeps its place (it is
-- never queued twice) and only gets a log record; a delayed one is ready at once. A finished task comes back to life (an operator's
-- re-run): its retention TTL is cleared and its restart count reset. A run may
-- hand back the task it owns (a worker's cold shutdown); that is not a restart.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id  arg(2) run token ('' = unfenced)  arg(3) message
-- Returns 1, or E_TASK_NOT_FOUND, {E_STALE, run, status}.
local t = load_task(arg(1))
if not t then return E_TASK_NOT_FOUND end
local refused = fence(t, arg(2))
if refused then return refused end
if is_terminal(t.status) then redis.call('HDEL', t.key, 'restarts', 'retries', 'cancelled') end
local ty, now = type_of(t), now_ms()
local delayed = t.status == S_ACCEPTED and t.due
set_status(t, ty, S_ACCEPTED, now, arg(3))
if delayed then  -- ready now, at the tail of the queue
  redis.call('ZREM', K_DELAYED, queue_entry(t))
  queued_delta(-ready_now(t, ty, now))
end
return 1
