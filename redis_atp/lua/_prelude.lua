-- _prelude.lua: helpers shared by every script, prepended when the scripts load,
-- after the constants scripts.py generates from Python (status codes S_*,
-- refusal codes E_*, IDS_PER_BUCKET), so each code has one definition.
--
-- Calling convention of every script (keys.py builds the names):
--   KEYS[1] types hash   KEYS[2] queue list   KEYS[3] deadlines zset
--   KEYS[4] wake zset    KEYS[5] seq counter  KEYS[6] waiters list  KEYS[7] waiting hash
--   ARGV[1] task key prefix      ARGV[2] id-bucket key prefix
--   ARGV[3] type key prefix      ARGV[4] owned-set key prefix  ARGV[5] mailbox prefix
--   ARGV[6] log record cap       ARGV[7] shards S      ARGV[8] this shard i
--   (a shard's task ids are seq * S + i)  the script's own arguments: arg(1), arg(2), ...
-- Keys of one task, type, bucket or owner are built here from those prefixes;
-- all of them share the namespace's hash tag, so they live in the same slot.

local K_TYPES, K_QUEUE, K_DEADLINES, K_WAKE, K_SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_WAITERS, K_WAITING = KEYS[6], KEYS[7]
local P_TASK, P_IDS, P_TYPE, P_OWNED, P_MAILBOX = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local LOG_CAP, SHARDS, SHARD = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local NARG = 8
local function arg(i) return ARGV[NARG + i] end

local COUNTER = {[S_ACCEPTED] = 'accepted', [S_SCHEDULED] = 'scheduled', [S_RUNNING] = 'running',
                 [S_PAUSED] = 'paused', [S_FINISHED] = 'finished_total', [S_FAILED] = 'failed_total'}

local function istr(n) return string.format('%d', n) end
local function is_live(s) return s == S_SCHEDULED or s == S_RUNNING or s == S_PAUSED end
local function is_terminal(s) return s == S_FINISHED or s == S_FAILED end

-- Milliseconds since the epoch, from the Redis clock (one clock for every host).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A log record: '<unix time with ms> <status code> <message>'. User text is
-- concatenated, never passed to string.format('%s'), which stops at a NUL byte.
local function log_record(now, code, msg)
  return string.format('%d.%03d %d ', math.floor(now / 1000), now % 1000, code) .. msg
end

local function bucket_key(id) return P_IDS .. istr(math.floor(id / (IDS_PER_BUCKET * SHARDS))) end

-- The type named `name`: its key and settings, or nil when it is not registered.
-- Read once per script call (a worker's step touches up to three tasks).
local type_cache = {}
local function load_type(name)
  local cached = type_cache[name]
  if cached ~= nil then return cached or nil end
  local n = redis.call('HGET', K_TYPES, name)
  local ty = false
  if n then
    local key = P_TYPE .. n
    local v = redis.call('HMGET', key, 'handler', 'timeout', 'timeret', 'maxrestart')
    ty = {name = name, key = key, handler = v[1], timeout = tonumber(v[2]) or 0,
          timeret = tonumber(v[3]) or -1, maxrestart = tonumber(v[4]) or 0}
  end
  type_cache[name] = ty
  return ty or nil
end

-- A task's type; a task outlives its type only if someone deleted keys by hand.
local ORPHAN = {timeout = 0, timeret = -1, maxrestart = 0, handler = ''}
local function type_of(t) return load_type(t.type) or ORPHAN end

-- The task stored under `key` if it is task `id`, else nil.
local function load_task_at(id, key)
  local v = redis.call('HMGET', key, 'id', 'type', 'ident', 'status', 'run', 'odig', 'restarts', 'nlog', 'token')
  if v[1] ~= istr(id) then return nil end
  return {id = tonumber(id), key = key, type = v[2], ident = v[3], status = tonumber(v[4]),
          run = tonumber(v[5] or '0'), odig = v[6], restarts = tonumber(v[7] or '0'),
          nlog = tonumber(v[8] or '1'), token = v[9]}
end

-- Task `id` (a number or a decimal string), or nil when it does not exist.
local function load_task(id)
  local digest = redis.call('HGET', bucket_key(id), istr(id))
  if not digest then return nil end
  return load_task_at(id, P_TASK .. digest)
end

-- nil when the caller may act on task `t`, else the refusal to return.
-- token '' is the operator's unfenced path; a run's token must be the one its claim
-- handed out, while the task is live (SCHEDULED, RUNNING, PAUSED). Tokens are
-- random (the claimer's), not the run counter: after a failover that lost a claim,
-- the next claim reuses that run number but never that token.
local function fence(t, token)
  if token ~= '' and (token ~= t.token or not is_live(t.status)) then
    return {E_STALE, t.run, t.status}
  end
  return nil
end

-- Task `id` leaves the queue other than by dequeue (cancel, delete). LREM is
-- O(queue length); the queue is in id order but for re-enqueued tasks, so the scan
-- starts from the end nearer to `id`. The wake marker exists only while the queue
-- holds work.
local function unqueue(id)
  local head, tail = tonumber(redis.call('LINDEX', K_QUEUE, 0)), tonumber(redis.call('LINDEX', K_QUEUE, -1))
  local from_head = not head or not tail or (tonumber(id) - head <= tail - tonumber(id))
  redis.call('LREM', K_QUEUE, from_head and 1 or -1, id)
  if redis.call('LLEN', K_QUEUE) == 0 then redis.call('DEL', K_WAKE) end
end

-- Id buckets: a bucket stays while any member is pinned (live or kept forever),
-- then lives until `expires`, the latest expiry of its members.
local function settle_bucket(b)
  local e = redis.call('HGET', b, 'expires')
  local members = redis.call('HLEN', b) - 1 - (e and 1 or 0)
  if members <= 0 then redis.call('DEL', b) elseif e then redis.call('PEXPIREAT', b, e) end
end

local function update_bucket(id, pin_delta, expire_at)
  local b = bucket_key(id)
  if expire_at and expire_at > tonumber(redis.call('HGET', b, 'expires') or '0') then
    redis.call('HSET', b, 'expires', istr(expire_at))
  end
  local pins
  if pin_delta ~= 0 then pins = redis.call('HINCRBY', b, 'pins', pin_delta)
  else pins = tonumber(redis.call('HGET', b, 'pins') or '0') end
  if pins > 0 then
    if pin_delta > 0 then redis.call('PERSIST', b) end
  else
    settle_bucket(b)
  end
end

local offer  -- defined below: a task that became ACCEPTED goes to a waiter or the queue

-- Moves task `t` (of type `ty`) to status `new`, keeping every index in step:
-- queue, deadlines, owner's set, per-type counters, retention TTLs and the log.
-- t.popped: claim() took the id off the queue. `via`, `via_msg`: a status passed
-- through on the way (SCHEDULED, for a claim that starts the task), logged only.
local function set_status(t, ty, new, now, msg, via, via_msg)
  local old, id = t.status, istr(t.id)
  if old == S_ACCEPTED and new ~= S_ACCEPTED and not t.popped then unqueue(id) end
  if is_live(new) and ty.timeout > 0 then
    redis.call('ZADD', K_DEADLINES, now + math.floor(ty.timeout * 1000), id)
  elseif is_live(old) then
    redis.call('ZREM', K_DEADLINES, id)
  end
  if is_live(old) and not is_live(new) and t.odig then
    redis.call('SREM', P_OWNED .. t.odig, id)
    redis.call('HDEL', t.key, 'odig')
  end
  if is_terminal(new) then
    local was_pinned = not is_terminal(old) or redis.call('PTTL', t.key) == -1
    if ty.timeret > 0 then
      local ttl = math.floor(ty.timeret * 1000)
      redis.call('PEXPIRE', t.key, ttl)
      update_bucket(t.id, was_pinned and -1 or 0, now + ttl)
    elseif not was_pinned then
      redis.call('PERSIST', t.key)
      update_bucket(t.id, 1, nil)
    end
  elseif is_terminal(old) and redis.call('PTTL', t.key) ~= -1 then
    redis.call('PERSIST', t.key)
    update_bucket(t.id, 1, nil)
  end
  if ty.key then
    if old ~= new and not is_terminal(old) then redis.call('HINCRBY', ty.key, COUNTER[old], -1) end
    if old ~= new or is_terminal(new) then redis.call('HINCRBY', ty.key, COUNTER[new], 1) end
  end
  local n = t.nlog + 1
  if via then
    redis.call('HSET', t.key, 'status', new, 'nlog', n + 1, 'log:' .. n, log_record(now, via, via_msg),
               'log:' .. (n + 1), log_record(now, new, msg))
    if n > LOG_CAP then redis.call('HDEL', t.key, 'log:' .. (n - LOG_CAP)) end
    n = n + 1
  else
    redis.call('HSET', t.key, 'status', new, 'nlog', n, 'log:' .. n, log_record(now, new, msg))
  end
  if n > LOG_CAP then redis.call('HDEL', t.key, 'log:' .. (n - LOG_CAP)) end
  t.status, t.nlog = new, n
  if new == S_ACCEPTED and old ~= S_ACCEPTED then offer(t, ty, now) end
end

-- Removes every trace of task `t`: its hash, queue entry, deadline, ownership,
-- live counter and id-bucket entry.
local function forget(t)
  local id = istr(t.id)
  if t.status == S_ACCEPTED then unqueue(id) end
  if is_live(t.status) then
    redis.call('ZREM', K_DEADLINES, id)
    if t.odig then redis.call('SREM', P_OWNED .. t.odig, id) end
  end
  local ty = type_of(t)
  if ty.key and not is_terminal(t.status) then redis.call('HINCRBY', ty.key, COUNTER[t.status], -1) end
  local pinned = not is_terminal(t.status) or redis.call('PTTL', t.key) == -1
  redis.call('DEL', t.key)
  redis.call('HDEL', bucket_key(t.id), id)
  update_bucket(t.id, pinned and -1 or 0, nil)
end

-- A live task whose run is gone (timed out, or its worker died): back to the
-- queue while it has restarts left, else FAILED. Returns the new status.
local function recover(t, ty, now, msg, why)
  if msg == '' then msg = why end
  if t.restarts < ty.maxrestart then
    t.restarts = t.restarts + 1
    redis.call('HSET', t.key, 'restarts', t.restarts)
    set_status(t, ty, S_ACCEPTED, now,
      msg .. string.format('; re-enqueued (restart %d of %d)', t.restarts, ty.maxrestart))
  else
    set_status(t, ty, S_FAILED, now,
      msg .. string.format('; restart limit reached (%d restarts)', ty.maxrestart))
  end
  return t.status
end

-- Each live task held by owner `odig` and not in `keep` (a set of id strings)
-- goes through `act(t, ty)`; the owner's set keeps only the ids in `keep`.
-- Returns {id, type, identifier, new status, ...} of the tasks acted on.
local function for_owned(odig, keep, act)
  local owned, out = P_OWNED .. odig, {}
  for _, id in ipairs(redis.call('SMEMBERS', owned)) do
    if not keep[id] then
      local t = load_task(id)
      if t and is_live(t.status) and t.odig == odig then
        local ty = type_of(t)
        act(t, ty)
        out[#out + 1] = t.id
        out[#out + 1] = t.type
        out[#out + 1] = t.ident
        out[#out + 1] = t.status
      else
        redis.call('SREM', owned, id)
      end
    end
  end
  return out
end

-- Ends a run (FINISHED or FAILED), or with if_unfinished leaves an already ended
-- task alone. Returns 1 (changed), 0 (already ended), E_TASK_NOT_FOUND or the
-- fence's refusal.
local function end_run(id, token, outcome, msg, if_unfinished)
  local t = load_task(id)
  if not t then return E_TASK_NOT_FOUND end
  if if_unfinished and is_terminal(t.status) and (token == '' or token == t.token) then return 0 end
  local refused = fence(t, token)
  if refused then return refused end
  set_status(t, type_of(t), outcome, now_ms(), msg)
  return 1
end

-- Claims task `t` (ACCEPTED, already off the queue) for an owner: SCHEDULED, the
-- owner, a new run number, the fencing token `token` (random, from the claimer)
-- and a deadline; its id joins the owner's set. With start_msg it goes on to
-- RUNNING. With `data`, its type, identifier, handler and input are returned too.
-- Returns {id, token, [type, identifier, handler, input]}.
local function take(t, ty, owner, odig, now, msg, start_msg, token, data)
  t.popped, t.run, t.odig, t.token = true, t.run + 1, odig, token
  redis.call('HSET', t.key, 'owner', owner, 'odig', odig, 'run', t.run, 'token', token)
  redis.call('SADD', P_OWNED .. odig, istr(t.id))
  if start_msg then
    set_status(t, ty, S_RUNNING, now, start_msg, S_SCHEDULED, msg)
  else
    set_status(t, ty, S_SCHEDULED, now, msg)
  end
  if not data then return {istr(t.id), token} end
  return {istr(t.id), token, t.type, t.ident, ty.handler, redis.call('HGET', t.key, 'input')}
end

-- Takes up to `count` tasks from the head of the queue for an owner (see take);
-- the tokens are token_base, token_base + 1, ... With start_msg they are started,
-- and their data returned; with `data` alone they stay SCHEDULED (a worker's
-- prefetch) and their data is returned.
-- Returns {id, token, [type, identifier, handler, input,] ...}.
local function claim(owner, odig, count, msg, start_msg, token_base, data)
  local now = now_ms()
  local out = {}
  for _, id in ipairs(redis.call('LPOP', K_QUEUE, count) or {}) do
    local t = load_task(id)
    if t and t.status == S_ACCEPTED then
      local ty = type_of(t)
      local token = istr(token_base + #out)
      for _, v in ipairs(take(t, ty, owner, odig, now, msg, start_msg, token, data or start_msg ~= nil)) do
        out[#out + 1] = v
      end
    end
  end
  -- Pass the wake-up on to the next waiter while work remains; clear it once the queue is empty.
  if redis.call('LLEN', K_QUEUE) > 0 then redis.call('ZADD', K_WAKE, 0, 'wake') else redis.call('DEL', K_WAKE) end
  return out
end

-- Hand-off: an idle worker thread that found no work registers as a waiter (its
-- owner digest in the waiters list; "<token> <owner>" in the waiting hash) and
-- blocks on its mailbox. A task that becomes ACCEPTED goes to the longest-waiting
-- waiter, claimed and started on its behalf in the same script, so the waiter wakes
-- with the task itself: one hop from enqueue to handler. Unsharded namespaces only.
local function pack_fields(fields)
  local parts = {}
  for i, f in ipairs(fields) do parts[i] = #f .. ':' .. f end
  return table.concat(parts)
end

-- Hands ACCEPTED task `t` (not in the queue) to the longest-waiting waiter, if any.
local function hand_off(t, ty, now)
  while SHARDS == 1 do
    local odig = redis.call('LPOP', K_WAITERS)
    if not odig then return false end
    local entry = redis.call('HGET', K_WAITING, odig)
    if entry then
      redis.call('HDEL', K_WAITING, odig)
      local sp = string.find(entry, ' ', 1, true)
      local fields = take(t, ty, string.sub(entry, sp + 1), odig, now, '', '', string.sub(entry, 1, sp - 1), true)
      redis.call('RPUSH', P_MAILBOX .. odig, pack_fields(fields))
      return true
    end
  end
  return false
end

offer = function(t, ty, now)
  if not hand_off(t, ty, now) then
    redis.call('RPUSH', K_QUEUE, istr(t.id))
    redis.call('ZADD', K_WAKE, 0, 'wake')
  end
end

-- An owner stops waiting: it leaves the waiters, and the tasks handed to it that it
-- never took go back to the queue uncharged (their handler never ran).
-- Returns {id, type, identifier, new status, ...} of those tasks.
local function unwait(odig, msg)
  redis.call('HDEL', K_WAITING, odig)
  redis.call('LREM', K_WAITERS, 0, odig)
  local mailbox, now, out = P_MAILBOX .. odig, now_ms(), {}
  for _, entry in ipairs(redis.call('LRANGE', mailbox, 0, -1)) do
    local len = string.match(entry, '^(%d+):')
    local t = len and load_task(string.sub(entry, #len + 2, #len + 1 + tonumber(len)))
    if t and is_live(t.status) and t.odig == odig then
      set_status(t, type_of(t), S_ACCEPTED, now, msg)
      for _, v in ipairs({t.id, t.type, t.ident, t.status}) do out[#out + 1] = v end
    end
  end
  redis.call('DEL', mailbox)
  return out
end
