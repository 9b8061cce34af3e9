-- trim_ended.lua: housekeeping's step over the indexes of ended tasks: entries of tasks
-- that Redis expired (their retention passed) are dropped, oldest first. For each type
-- with a positive timeret it looks at entries older than that, at most `limit` in all.
-- A FINISHED index keeps the newest FINISHED_LISTED entries (the tasks stay; lists
-- show the newest): its oldest go, `limit` at most per call.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) limit (entries looked at per call, 1..1000)
-- Returns {entries dropped, 1 if the limit stopped it (call again) else 0}.
local limit = tonumber(arg(1))
if not limit or limit < 1 or limit > 1000 then return redis.error_reply('ERR limit must be 1..1000') end
local now, dropped, budget = now_ms(), 0, limit
for _, name in ipairs(redis.call('HKEYS', K_TYPES)) do
  local ty = load_type(name)
  local over = ty and redis.call('ZCARD', ended_key(ty, S_FINISHED)) - FINISHED_LISTED or 0
  if over > 0 then
    local n = math.min(over, budget)
    redis.call('ZREMRANGEBYRANK', ended_key(ty, S_FINISHED), 0, n - 1)
    dropped, budget = dropped + n, budget - n
    if budget <= 0 then return {dropped, 1} end
  end
  if ty and ty.timeret > 0 then
    for _, code in ipairs({S_FINISHED, S_FAILED}) do
      local key = ended_key(ty, code)
      local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - ty.timeret * 1000, 'LIMIT', 0, budget)
      budget = budget - #old
      local gone = {}
      for _, id in ipairs(old) do
        if not load_task(id) then gone[#gone + 1] = id end
      end
      if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
      dropped = dropped + #gone
      if budget <= 0 then return {dropped, 1} end
    end
  end
end
return {dropped, 0}
