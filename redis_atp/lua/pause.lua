-- pause.lua: pause or resume claims from the namespace, or from one type (pause_queue,
-- resume_queue). While the namespace is paused claims take nothing and nothing is handed
-- to idle workers; while a type is, its tasks are not handed to idle workers and claims
-- that meet them in the queue set them aside in its parked list. Enqueueing goes on;
-- every task still counts in the queue size. Resuming a type puts its parked tasks back at the head of the queue, `batch` at
-- a time (call again while some are left), and wakes idle workers.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) 'pause' or 'resume'  arg(2) type name ('' = the namespace)  arg(3) batch (1..1000)
-- Returns the parked tasks of the type still to put back (0: done), or E_TYPE_NOT_FOUND.
local action, name, batch = arg(1), arg(2), tonumber(arg(3))
if action ~= 'pause' and action ~= 'resume' then return redis.error_reply('ERR action must be pause or resume') end
if not batch or batch < 1 or batch > 1000 then return redis.error_reply('ERR batch must be 1..1000') end
local ty = name ~= '' and load_type(name)
if name ~= '' and not ty then return E_TYPE_NOT_FOUND end
local field = ty and ('t:' .. name) or 'all'
if action == 'pause' then
  redis.call('HSET', K_PAUSED, field, 1)
  pause_state = nil
  queued_delta(0)  -- the wake marker goes while nothing can be claimed
  return 0
end
redis.call('HDEL', K_PAUSED, field)
pause_state = nil
local left = 0
if ty then
  local parked = ty.key .. ':parked'
  local back = 0
  for _, entry in ipairs(redis.call('RPOP', parked, batch) or {}) do  -- newest first, each to the head
    local id, nq = string.match(entry, '^(%d+):?(%d*)$')
    local t = id and load_task(id)
    if t and t.status == S_ACCEPTED and t.parked and t.nq == (tonumber(nq) or 0) then
      redis.call('HDEL', t.key, 'parked')
      redis.call('LPUSH', queue_list(t), entry)
      back = back + 1
    end
  end
  if back > 0 then pause().parked = redis.call('HINCRBY', K_PAUSED, 'parked', -back) end
  left = redis.call('LLEN', parked)
end
settle_pause()
local _, ready = queued_delta(0)
wake_waiters(ready)
return left
