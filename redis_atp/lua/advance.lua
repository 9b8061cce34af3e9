-- advance.lua: the worker's step, one round trip per task: end the run that just
-- finished (unless its handler already ended it), start the task the worker
-- prefetched, and claim more: started (the next task to run) or kept SCHEDULED (a
-- prefetch, so the worker can send this call ahead and run that task meanwhile).
-- Each part is the same state change as finish.lua, start.lua and dequeue.lua.
-- Finding no work, the owner can register as a waiter (see hand_off): the next
-- task that becomes ACCEPTED is then claimed for it and put in its mailbox.
-- KEYS[1..7], ARGV[1..8]: the common convention (_prelude.lua).
-- arg(1) owner  arg(2) owner digest  arg(3) ended task id ('' = none)  arg(4) its
-- token  arg(5) its outcome (FINISHED or FAILED)  arg(6) its message  arg(7) task to
-- start ('' = none)  arg(8) its token  arg(9) message of RUNNING records  arg(10)
-- tasks to claim  arg(11) 'start' (claim and start) or 'prefetch' (claim only; while
-- starting a task, a prefetch takes one only if 2 or more wait in the queue, so the
-- last tasks go to idle workers rather than behind this one)
-- arg(12) token base (random; claimed tasks get base, base + 1, ...)  arg(13) token
-- for a hand-off if nothing is claimed or started ('' = do not wait; unsharded only)
-- Returns {ending, starting, id, token, type, identifier, handler, input, ...}:
-- ending is 1 (ended), 0 (already ended, or none), E_TASK_NOT_FOUND or E_STALE;
-- starting is 1 (started), 0 (none), E_TASK_NOT_FOUND or E_STALE.
local ending, starting = 0, 0
if arg(3) ~= '' then
  ending = end_run(arg(3), arg(4), tonumber(arg(5)), arg(6), true)
  if type(ending) == 'table' then ending = ending[1] end
end
if arg(7) ~= '' then
  local t = load_task(arg(7))
  starting = t and (fence(t, arg(8)) or 1) or E_TASK_NOT_FOUND
  if starting == 1 then set_status(t, type_of(t), S_RUNNING, now_ms(), arg(9)) end
  if type(starting) == 'table' then starting = starting[1] end
end
local owner, odig, count = arg(1), arg(2), tonumber(arg(10))
if arg(11) == 'prefetch' and arg(7) ~= '' and redis.call('LLEN', K_QUEUE) < 2 then count = 0 end
local out = {}
if count > 0 then
  local start = arg(11) == 'start' and arg(9) or nil
  out = claim(owner, odig, count, '', start, tonumber(arg(12)), true)
end
if #out == 0 and arg(7) == '' and arg(13) ~= '' and SHARDS == 1
    and redis.call('LLEN', P_MAILBOX .. odig) == 0 then
  if redis.call('HSET', K_WAITING, odig, arg(13) .. ' ' .. owner) == 1 then redis.call('RPUSH', K_WAITERS, odig) end
end
table.insert(out, 1, starting)
table.insert(out, 1, ending)
return out
