-- schedule_next.lua: a schedule moves on to its next tick, once the tick that was due
-- is done with (its task created, or skipped), and only if no one moved it meanwhile:
-- the housekeeping of several workers may look at the same tick; the task of a tick
-- is created once because its identifier, "<name>@<tick>", is unique.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua); it uses the schedules
-- hash K_SCHEDULES, the schedule_due zset K_SCHEDULE_DUE and the schedule_last hash.
-- arg(1) name  arg(2) the tick that was due, ms  arg(3) the next tick, ms
-- arg(4) identifier of the task created for it ('' = none created)
-- Returns 1 if this call moved the schedule on, 0 if it had moved or was removed.
local name, due, nxt = arg(1), tonumber(arg(2)), tonumber(arg(3))
if not due or not nxt then return redis.error_reply('ERR invalid tick time') end
local score = redis.call('ZSCORE', K_SCHEDULE_DUE, name)
if not score or tonumber(score) ~= due then return 0 end
redis.call('ZADD', K_SCHEDULE_DUE, nxt, name)
if arg(4) ~= '' then redis.call('HSET', K_SCHEDULE_LAST, name, arg(4)) end
return 1
