-- reap_zombies.lua: live tasks past their deadline (no status change for `timeout`
-- seconds) go back to the queue, or to FAILED once they have used up `maxrestart`
-- (reenqueueZombieTasks). Takes at most `limit` tasks per call, oldest deadline
-- first, so a huge backlog never blocks Redis for long; each task is re-checked
-- under the script's atomicity, so concurrent sweepers act on it exactly once.
-- KEYS[1..7], ARGV[1..8]: the common convention (_prelude.lua).
-- arg(1) limit  arg(2) message ('' = a default saying why)
-- Returns {id, type, identifier, new status, ...}.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_DEADLINES, '-inf', now, 'LIMIT', 0, tonumber(arg(1)))
local out = {}
for _, id in ipairs(ids) do
  local t = load_task(id)
  if t and is_live(t.status) then
    local ty = type_of(t)
    local status = recover(t, ty, now, arg(2), 'timed out: no status change for ' .. ty.timeout .. ' s')
    out[#out + 1] = t.id
    out[#out + 1] = t.type
    out[#out + 1] = t.ident
    out[#out + 1] = status
  else
    redis.call('ZREM', K_DEADLINES, id)
  end
end
return out
