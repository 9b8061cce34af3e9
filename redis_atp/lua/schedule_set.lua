-- schedule_set.lua: add, replace or remove a schedule (add_schedule, remove_schedule).
-- Schedules live on shard 0: the spec (JSON, as the library wrote it), the next tick
-- in a sorted set that housekeeping reads, and the identifier of the last tick's task.
-- KEYS[1..7], ARGV[1..15]: the common convention (_prelude.lua); also KEYS[8] the
-- schedules hash, KEYS[9] the schedule_due zset, KEYS[10] the schedule_last hash.
-- arg(1) name  arg(2) spec JSON ('' = remove)  arg(3) its first tick, ms (with a spec)
-- Returns 1 if the schedule existed before, else 0; a malformed time is refused first.
local name, spec = arg(1), arg(2)
if spec ~= '' and not tonumber(arg(3)) then return redis.error_reply('ERR invalid tick time: ' .. arg(3)) end
local existed = redis.call('HEXISTS', KEYS[8], name)
if spec == '' then
  redis.call('HDEL', KEYS[8], name)
  redis.call('ZREM', KEYS[9], name)
  redis.call('HDEL', KEYS[10], name)
else
  redis.call('HSET', KEYS[8], name, spec)
  redis.call('ZADD', KEYS[9], tonumber(arg(3)), name)
end
return existed
