-- requeue_failed.lua: re-run FAILED tasks of one type, oldest failure first, at most
-- `limit` per call (redis-atp requeue --failed): each goes back to ACCEPTED at the tail of
-- the queue as reenqueue.lua does for a finished task (restarts, retries and the
-- cancelled mark reset; the queue limit ignored). Only tasks that failed by `until`
-- are taken, so tasks that fail again meanwhile are not re-run in the same sweep.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) type name  arg(2) until (ms)  arg(3) limit (1..1000)  arg(4) message
-- Returns {tasks re-queued, tasks of the type that failed by `until` still left},
-- or E_TYPE_NOT_FOUND.
local ty = load_type(arg(1))
if not ty then return E_TYPE_NOT_FOUND end
local upto, limit = tonumber(arg(2)), tonumber(arg(3))
if not upto or not limit or limit < 1 or limit > 1000 then return redis.error_reply('ERR bad until or limit') end
local failed, now, done = ty.key .. ':failed', now_ms(), 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', failed, '-inf', upto, 'LIMIT', 0, limit)) do
  local t = load_task(id)
  if t and t.status == S_FAILED then
    redis.call('HDEL', t.key, 'restarts', 'retries', 'cancelled')
    t.restarts, t.retries, t.cancelled = 0, 0, nil
    set_status(t, ty, S_ACCEPTED, now, arg(4))
    done = done + 1
  else
    redis.call('ZREM', failed, id)  -- expired or changed behind the index's back
  end
end
return {done, redis.call('ZCOUNT', failed, '-inf', upto)}
