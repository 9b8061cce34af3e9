-- _control.lua: what the control features add to every status change, prepended after
-- _prelude.lua: the events stream, the per-type indexes of ended tasks, and pausing.

-- Events: every status change appends {task, type, ident, status, msg} to K_EVENTS,
-- capped near the namespace's max_events (config(); absent: DEFAULT_MAX_EVENTS; 0: off,
-- and nothing is written). The entry id's time is the event's time.
-- The stream is trimmed by the first event of each millisecond (id '<ms>-0'): at most
-- a millisecond's events over the cap, and a burst pays for one trim, not one each.
emit = function(id, type_name, ident, code, msg)  -- id: as text
  local events_cap = config().events
  if events_cap <= 0 then return end
  if #msg > EVENT_MESSAGE_BYTES then msg = string.sub(msg, 1, EVENT_MESSAGE_BYTES) end
  local entry = redis.call('XADD', K_EVENTS, '*', 'task', id, 'type', type_name, 'ident', ident,
                           'status', TEXT[code], 'msg', msg)
  if string.sub(entry, -2) == '-0' then redis.call('XTRIM', K_EVENTS, 'MAXLEN', '~', events_cap) end
end

-- What is paused (see pause.lua): {all = namespace paused, ['t:<type>'] = type paused,
-- parked = tasks set aside in parked lists}; read once per call. With nothing paused
-- the hash does not exist, and this costs one lookup of a missing key.
pause = function()
  if not pause_state then
    local flat = redis.call('HGETALL', K_PAUSED)
    pause_state = {}
    for i = 1, #flat, 2 do pause_state[flat[i]] = flat[i + 1] end
    pause_state.parked = tonumber(pause_state.parked or '0')
  end
  return pause_state
end

-- Whether claims may not take tasks of type `name` (it, or the namespace, is paused).
local function paused(name)
  local p = pause()
  return p.all ~= nil or p['t:' .. name] ~= nil
end

-- The index of a type's FINISHED or FAILED tasks: id -> time it ended (ms).
local function ended_key(ty, code)
  return ty.key .. (code == S_FINISHED and ':finished' or ':failed')
end

-- Task `t` of type `ty` goes from status `old` to `new` (S_UNDEFINED: deleted) at `now`:
-- it leaves the ended index of `old` and joins that of `new`, when they are terminal.
index_end = function(t, ty, old, new, now)
  local id = t.sid
  if is_terminal(old) and old ~= new then redis.call('ZREM', ended_key(ty, old), id) end
  if is_terminal(new) then redis.call('ZADD', ended_key(ty, new), ms_text(now), id) end
end

-- Whether type `name` itself is paused (claims park its tasks).
local function type_paused(name)
  return pause()['t:' .. name] ~= nil
end

-- Task `t` (ACCEPTED, just taken off the queue by a claim) is set aside in its type's
-- parked list while the type is paused, in the order claims meet them; it still counts
-- in the queue size. pause.lua's resume puts it back at the head of the queue.
local function park(t, ty)
  redis.call('RPUSH', ty.key .. ':parked', queue_entry(t))
  redis.call('HSET', t.key, 'parked', 1)
  t.parked = '1'
  pause().parked = redis.call('HINCRBY', K_PAUSED, 'parked', 1)
end

-- With nothing paused and nothing parked, the paused hash goes, so claims skip pausing.
local function settle_pause()
  pause_state = nil
  if pause().parked <= 0 and redis.call('HLEN', K_PAUSED) == redis.call('HEXISTS', K_PAUSED, 'parked') then
    redis.call('DEL', K_PAUSED)
    pause_state = {parked = 0}
  end
end

-- Wakes up to `n` idle workers (an empty mailbox entry each: they step again and claim).
local function wake_waiters(n)
  if n <= 0 then return end
  for _, odig in ipairs(redis.call('LRANGE', K_WAITERS, 0, n - 1)) do
    redis.call('RPUSH', P_MAILBOX .. odig, '')
  end
end
