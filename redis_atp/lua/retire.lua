-- retire.lua: one step of deleteRetiredTasks over the id buckets first..first+step-1:
-- removes FINISHED/FAILED tasks whose retention (their type's current timeret)
-- has passed. TTLs already do this for every task that ended under a positive
-- timeret, so this finds tasks kept by an older setting; it also drops index
-- entries of tasks Redis has already expired.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) first bucket  arg(2) buckets to walk in this step
-- Returns {next bucket (0: done), id, type, identifier, ...} of the tasks removed.
local first, step = tonumber(arg(1)), tonumber(arg(2))
local last = math.floor(tonumber(redis.call('GET', K_SEQ) or '0') / IDS_PER_BUCKET)
local now = now_ms()
local out = {0}
for b = first, math.min(last, first + step - 1) do
  local bkey = P_IDS .. b
  local entries = redis.call('HGETALL', bkey)
  for i = 1, #entries, 2 do
    local id = tonumber(entries[i])
    if id then
      local t = load_task_at(id, P_TASK .. entries[i + 1])
      if not t then
        redis.call('HDEL', bkey, entries[i])
      elseif is_terminal(t.status) then
        local ty = type_of(t)
        if ty.timeret > 0 and changed_at(t) + ty.timeret * 1000 <= now then
          forget(t)
          out[#out + 1] = t.id
          out[#out + 1] = t.type
          out[#out + 1] = t.ident
        end
      end
    end
  end
  if redis.call('EXISTS', bkey) == 1 and redis.call('HGET', bkey, 'pins') == '0' then settle_bucket(bkey) end
end
if first + step - 1 < last then out[1] = first + step end
return out
