-- schedule_set.lua: add, replace or remove a schedule (add_schedule, remove_schedule).
-- Schedules live on shard 0: the spec (JSON, as the library wrote it), the next tick
-- in a sorted set that housekeeping reads, and the identifier of the last tick's task.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua); it uses the schedules
-- hash K_SCHEDULES, the schedule_due zset K_SCHEDULE_DUE and the schedule_last hash.
-- arg(1) name  arg(2) spec JSON ('' = remove)  arg(3) its first tick, ms (with a spec)
-- Returns 1 if the schedule existed before, else 0; a malformed time is refused first.
local name, spec = arg(1), arg(2)
if spec ~= '' and not tonumber(arg(3)) then return redis.error_reply('ERR invalid tick time: ' .. arg(3)) end
local existed = redis.call('HEXISTS', K_SCHEDULES, name)
if spec == '' then
  redis.call('HDEL', K_SCHEDULES, name)
  redis.call('ZREM', K_SCHEDULE_DUE, name)
  redis.call('HDEL', K_SCHEDULE_LAST, name)
else
  redis.call('HSET', K_SCHEDULES, name, spec)
  redis.call('ZADD', K_SCHEDULE_DUE, tonumber(arg(3)), name)
end
return existed
