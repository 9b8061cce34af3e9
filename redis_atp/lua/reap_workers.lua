-- reap_workers.lua: the tasks of dead worker processes go back to the queue at once
-- (or to FAILED once they used up maxrestart: a task that kills every worker that
-- runs it must not loop forever), and the dead workers leave the registry. A
-- worker is dead when its heartbeat key has expired (host lost), or when named
-- explicitly (its supervisor saw the process exit).
-- KEYS[1..5], ARGV[1..5]: the common convention (_prelude.lua); also KEYS[6] workers hash.
-- arg(1) worker key prefix  arg(2) worker id to reap now ('' = every worker whose
-- heartbeat expired)  arg(3) message ('' = a default saying why)  arg(4) '1': count
-- a restart (the worker died); '0': just put the tasks back (orderly shutdown)
-- Returns {id, type, identifier, new status, ...} of the tasks recovered.
local registry, named = KEYS[6], arg(2)
local entries
if named ~= '' then
  entries = {named, redis.call('HGET', registry, named)}
else
  entries = redis.call('HGETALL', registry)
end
local now, out = now_ms(), {}
for i = 1, #entries, 2 do
  local id, info = entries[i], entries[i + 1]
  if info then
    info = cjson.decode(info)
    local hb = arg(1) .. info.digest
    if named ~= '' or redis.call('EXISTS', hb) == 0 then
      local why = named ~= '' and ('worker ' .. id .. ' exited') or ('worker ' .. id .. ' lost its heartbeat')
      for _, slot in ipairs(info.slots) do
        local acted = for_owned(slot, {}, function(t, ty)
          if arg(4) == '1' then recover(t, ty, now, arg(3), why)
          else set_status(t, ty, S_ACCEPTED, now, arg(3) ~= '' and arg(3) or (why .. '; put back')) end
        end)
        for _, v in ipairs(acted) do out[#out + 1] = v end
        redis.call('DEL', P_OWNED .. slot)
      end
      redis.call('DEL', hb)
      redis.call('HDEL', registry, id)
    end
  end
end
return out
