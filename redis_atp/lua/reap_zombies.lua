-- reap_zombies.lua: live tasks with no status change for their type's current
-- `timeout` go back to the queue, or to FAILED once they have used up `maxrestart`
-- (reenqueueZombieTasks). Each type's live set is scored by last status change, so a
-- changed timeout applies to the tasks already running (0: never). Takes at most
-- `limit` tasks per call, oldest first within a type, so a huge backlog never blocks
-- Redis for long; each task is re-checked under the script's atomicity, so
-- concurrent sweepers act on it exactly once.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) limit  arg(2) message ('' = a default saying why)
-- Returns {id, type, identifier, new status, ...}.
local now, limit = now_ms(), tonumber(arg(1))
local out, acted = {}, 0
for _, name in ipairs(redis.call('HKEYS', K_TYPES)) do
  if acted >= limit then break end
  local ty = load_type(name)
  if ty and ty.timeout > 0 then
    local due = now - math.floor(ty.timeout * 1000)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', ty.live, '-inf', due, 'LIMIT', 0, limit - acted)) do
      acted = acted + 1
      local t = load_task(id)
      if t and is_live(t.status) and t.type == name then
        local status = recover(t, ty, now, arg(2), 'timed out: no status change for ' .. ty.timeout .. ' s')
        for _, v in ipairs({t.id, t.type, t.ident, status}) do out[#out + 1] = v end
      else
        redis.call('ZREM', ty.live, id)
      end
    end
  end
end
return out
