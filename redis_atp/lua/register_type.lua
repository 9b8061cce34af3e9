-- register_type.lua: create a task type, or update the settings of an existing one.
-- KEYS[1..7], ARGV[1..8]: the common convention (_prelude.lua); also KEYS[8] typeseq.
-- arg(1) name  arg(2) handler (dotted path)  arg(3) timeout s  arg(4) timeret s
-- arg(5) maxrestart (>= 0)
-- Returns the type number; a malformed number is refused before anything is written.
local name = arg(1)
for i = 3, 4 do
  if seconds(arg(i), nil) == nil then return redis.error_reply('ERR invalid number of seconds: ' .. arg(i)) end
end
local maxrestart = tonumber(arg(5))
if not maxrestart or maxrestart < 0 or maxrestart ~= math.floor(maxrestart) or maxrestart > 1e9 then
  return redis.error_reply('ERR invalid maxrestart: ' .. arg(5))
end
local n = redis.call('HGET', K_TYPES, name)
if not n then
  n = redis.call('INCR', KEYS[8])
  redis.call('HSET', K_TYPES, name, n)
end
redis.call('HSET', P_TYPE .. n, 'name', name, 'handler', arg(2), 'timeout', arg(3),
           'timeret', arg(4), 'maxrestart', arg(5))
return tonumber(n)
