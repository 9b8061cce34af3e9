-- register_type.lua: create a task type, or update the settings of an existing one.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua); new types are numbered
-- from K_TYPESEQ.
-- arg(1) name  arg(2) handler (dotted path)  arg(3) timeout s  arg(4) timeret s
-- arg(5) maxrestart (>= 0)  arg(6) retries (>= 0)  arg(7) retry_delay s (>= 0)
-- arg(8) retry_backoff (>= 1)  arg(9) retry_max_delay s (>= 0)  arg(10) hard_timeout s
-- (0: none; a run older than that is killed by its worker)
-- Returns the type number; a malformed number is refused before anything is written.
local name = arg(1)
for _, i in ipairs({3, 4, 7, 8, 9, 10}) do
  if seconds(arg(i), nil) == nil then return redis.error_reply('ERR invalid number of seconds: ' .. arg(i)) end
end
if tonumber(arg(7)) < 0 or tonumber(arg(8)) < 1 or tonumber(arg(9)) < 0 or tonumber(arg(10)) < 0 then
  return redis.error_reply('ERR invalid retry settings')
end
for _, i in ipairs({5, 6}) do
  local count = tonumber(arg(i))
  if not count or count < 0 or count ~= math.floor(count) or count > 1e9 then
    return redis.error_reply('ERR invalid count: ' .. arg(i))
  end
end
local n = redis.call('HGET', K_TYPES, name)
if not n then
  n = redis.call('INCR', K_TYPESEQ)
  redis.call('HSET', K_TYPES, name, n)
end
redis.call('HSET', P_TYPE .. n, 'name', name, 'handler', arg(2), 'timeout', arg(3),
           'timeret', arg(4), 'maxrestart', arg(5), 'retries', arg(6), 'retry_delay', arg(7),
           'retry_backoff', arg(8), 'retry_max_delay', arg(9), 'hard_timeout', arg(10))
types_changed()
return tonumber(n)
