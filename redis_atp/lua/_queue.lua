-- _queue.lua: the queue's machinery, prepended to every script after _prelude.lua:
-- claims, hand-offs to waiting workers, delayed tasks and their promotion.

-- What a started task's run needs: {id, token, type, identifier, handler, input}.
local function run_data(t, ty)
  return {t.sid, t.token, t.type, t.ident, ty.handler, redis.call('HGET', t.key, 'input')}
end

-- Claims task `t` (ACCEPTED, already off the queue) for an owner: SCHEDULED, the
-- owner, a new run number, the fencing token `token` (random, from the claimer)
-- and a deadline; its id joins the owner's set. With start_msg it goes on to
-- RUNNING. Returns {id, token}, or with `data` run_data.
local function take(t, ty, owner, odig, now, msg, start_msg, token, data)
  t.popped, t.run, t.odig, t.token = true, t.run + 1, odig, token
  redis.call('HSET', t.key, 'owner', owner, 'odig', odig, 'run', istr(t.run), 'token', token)
  redis.call('SADD', P_OWNED .. odig, t.sid)
  if start_msg then
    set_status(t, ty, S_RUNNING, now, start_msg, S_SCHEDULED, msg)
  else
    set_status(t, ty, S_SCHEDULED, now, msg)
  end
  if not data then return {t.sid, t.token} end
  return run_data(t, ty)
end

-- Queue entries one claim may pop (entries left behind, see unqueue, count too), so
-- a claim stays short; its caller sees tasks still queued and calls again.
local MAX_POPS = 100
-- Due tasks one claim (or one housekeeping call) promotes at most.
local PROMOTE_BATCH = 100

-- The queue lists in the order claims take from them: levels above 0, highest first,
-- then the default list (level 0), then levels below 0. O(levels in use).
local function claim_order()
  local levels = redis.call('ZREVRANGE', K_LEVELS, 0, -1)
  if #levels == 0 then return {K_QUEUE} end
  local order = {}
  for _, p in ipairs(levels) do
    if tonumber(p) < 0 and not order.default then order[#order + 1], order.default = K_QUEUE, true end
    order[#order + 1] = P_LEVEL .. p
  end
  if not order.default then order[#order + 1] = K_QUEUE end
  return order
end

-- Takes up to `count` tasks from the head of the queue for an owner (see take);
-- the tokens are token_base, token_base + 1, ... With start_msg they are started,
-- and with `data` (or start_msg) their data is returned.
-- Returns {id, token, [type, identifier, handler, input,] ...} and the queue size left.
local function claim(owner, odig, count, msg, start_msg, token_base, data)
  local now = now_ms()
  local extras = redis.call('EXISTS', K_DELAYED, K_LEVELS, K_PAUSED) > 0  -- delays, priorities, pauses: rarely
  if not extras then
    pause_state = {parked = 0}  -- known: nothing is paused
  else
    promote(now, PROMOTE_BATCH)
    if pause().all then return {}, 0 end
  end
  local out, claimed, pops, parked = {}, 0, 0, 0
  local lists, k = extras and claim_order() or {K_QUEUE}, 1
  while claimed < count and pops < MAX_POPS and lists[k] do
    local entries = redis.call('LPOP', lists[k], istr(math.min(count - claimed, MAX_POPS - pops)))
    if not entries then
      if lists[k] ~= K_QUEUE then redis.call('ZREM', K_LEVELS, string.sub(lists[k], #P_LEVEL + 1)) end
      k = k + 1
      entries = {}
    end
    pops = pops + #entries
    for _, entry in ipairs(entries) do
      local id, nq = string.match(entry, '^(%d+):?(%d*)$')
      local t = id and load_task(id)
      if t and t.status == S_ACCEPTED and t.nq == (tonumber(nq) or 0) then
        local ty = type_of(t)
        if extras and ty.key and type_paused(t.type) then
          park(t, ty)
          parked = parked + 1
        else
          claimed = claimed + 1
          for _, v in ipairs(take(t, ty, owner, odig, now, msg, start_msg, istr(token_base + claimed - 1),
                                  data or start_msg ~= nil)) do
            out[#out + 1] = v
          end
        end
      end
    end
  end
  if claimed + parked > 0 then
    local _, ready = queued_delta(-claimed, not extras)
    return out, ready
  end
  return out, ready_count()
end

-- Hand-off: an idle worker thread that found no work registers as a waiter (its
-- owner digest in the waiters list; "<token> <owner>" in the waiting hash) and
-- blocks on its mailbox. A task that becomes ACCEPTED goes to the longest-waiting
-- waiter, claimed for it (SCHEDULED) in the same script, and its id and token go to
-- the waiter's mailbox; the waiter starts it with take_mailbox, which checks that
-- the claim is still current. Unsharded namespaces only. Returns true (handed), false
-- (no waiter left) or nil (not handed: the task's type or the namespace is paused).
local function hand_off(t, ty, now)
  if paused(t.type) then return nil end
  while SHARDS == 1 do
    local odig = redis.call('LPOP', K_WAITERS)
    if not odig then return false end
    local entry = redis.call('HGET', K_WAITING, odig)
    if entry then
      redis.call('HDEL', K_WAITING, odig)
      local sp = string.find(entry, ' ', 1, true)
      take(t, ty, string.sub(entry, sp + 1), odig, now, '', nil, string.sub(entry, 1, sp - 1), false)
      redis.call('RPUSH', P_MAILBOX .. odig, t.sid .. ' ' .. t.token)
      return true
    end
  end
  return false
end

-- A delayed task became the earliest due: idle consumers recompute their wait. The
-- longest-waiting waiter gets an empty mailbox entry (no task; it steps again and
-- learns the new due time), and blocked dequeuers (sharded slots, library callers)
-- the wake marker.
local function nudge(due)
  local first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) < due then return end
  if SHARDS == 1 then
    local odig = redis.call('LINDEX', K_WAITERS, 0)
    if odig then redis.call('RPUSH', P_MAILBOX .. odig, '') end
  end
  redis.call('ZADD', K_WAKE, 0, 'wake')
end

-- New delayed tasks {due, entry, due, entry, ...}, all due at `due`, join the delayed
-- set. Returns how many.
local function hold(held, due)
  for i = 1, #held, 1000 do redis.call('ZADD', K_DELAYED, unpack(held, i, math.min(i + 999, #held))) end
  if #held > 0 then nudge(due) end
  return #held / 2
end

offer = function(t, ty, now)
  if t.due and t.due > now then
    t.nq = redis.call('HINCRBY', t.key, 'nq', 1)
    redis.call('HSET', t.key, 'due', t.due)
    redis.call('ZADD', K_DELAYED, t.due, queue_entry(t))
    queued_delta(1)
    nudge(t.due)
  elseif not hand_off(t, ty, now) then
    t.due = nil
    t.nq = redis.call('HINCRBY', t.key, 'nq', 1)
    redis.call('RPUSH', queue_list(t), queue_entry(t))
    queued_delta(1)
  end
end

-- Delayed task `t` (ACCEPTED, out of K_DELAYED) is ready: it goes to a waiter or the
-- tail of the queue. Returns 1 if it was handed off (it left the queue count), else 0.
local function ready_now(t, ty, now)
  redis.call('HDEL', t.key, 'due')
  t.due = nil
  if hand_off(t, ty, now) then return 1 end
  redis.call('RPUSH', queue_list(t), queue_entry(t))
  return 0
end

-- Delayed tasks due by `now` join the tail of the queue, in due order (or go to a
-- waiter), at most `limit` of them. Returns how many.
promote = function(now, limit)
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  redis.call('ZREM', K_DELAYED, unpack(due))
  local handed = 0
  for _, entry in ipairs(due) do
    local id, nq = string.match(entry, '^(%d+):?(%d*)$')
    local t = id and load_task(id)
    if t and t.status == S_ACCEPTED and t.nq == (tonumber(nq) or 0) then handed = handed + ready_now(t, type_of(t), now) end
  end
  queued_delta(-handed)
  return #due
end

-- The task a mailbox entry "<id> <token>" of owner `odig` names, if that claim is
-- still current (the task SCHEDULED for this owner under this token), else nil.
local function handed_task(entry, odig)
  local sp = string.find(entry, ' ', 1, true)
  local t = sp and load_task(string.sub(entry, 1, sp - 1))
  if t and t.status == S_SCHEDULED and t.odig == odig and t.token == string.sub(entry, sp + 1) then return t end
  return nil
end

-- An owner leaves the waiters (the list entry only if it was waiting: O(waiters)).
local function stop_waiting(odig)
  if redis.call('HDEL', K_WAITING, odig) == 1 then redis.call('LREM', K_WAITERS, 0, odig) end
end

-- The task handed to owner `odig` whose claim is still current, from its mailbox:
-- started (RUNNING) and returned as run_data; entries whose claim is gone (the task
-- deleted, recovered, put back or re-claimed meanwhile) are dropped, and a task whose
-- type or namespace was paused since goes back to the queue, uncharged. nil if none.
local function take_mailbox(odig, start_msg)
  local mailbox = P_MAILBOX .. odig
  while true do
    local entry = redis.call('LPOP', mailbox)
    if not entry then return nil end
    local t = handed_task(entry, odig)
    if t then
      local ty = type_of(t)
      if not paused(t.type) then
        set_status(t, ty, S_RUNNING, now_ms(), start_msg)
        return run_data(t, ty)
      end
      set_status(t, ty, S_ACCEPTED, now_ms(), 'paused before it started: back to the queue')
    end
  end
end

-- An owner stops waiting: it leaves the waiters, and the tasks handed to it that it
-- never took go back to the queue uncharged (their handler never ran, so no owner
-- keeps one); an entry whose claim is gone (the task re-queued, perhaps claimed again
-- by this owner: another token) is left alone.
-- Returns {id, type, identifier, new status, ...} of those tasks.
local function unwait(odig, msg)
  stop_waiting(odig)
  local mailbox, now, out = P_MAILBOX .. odig, now_ms(), {}
  for _, entry in ipairs(redis.call('LRANGE', mailbox, 0, -1)) do
    local t = handed_task(entry, odig)
    if t then
      set_status(t, type_of(t), S_ACCEPTED, now, msg)
      for _, v in ipairs({t.id, t.type, t.ident, t.status}) do out[#out + 1] = v end
    end
  end
  redis.call('DEL', mailbox)
  return out
end
