-- _prelude.lua: helpers shared by every script, prepended when the scripts load,
-- after the constants scripts.py generates from Python (status codes S_*, refusal
-- codes E_*, IDS_PER_BUCKET, and the key names K_* and prefixes P_* of keys.py's
-- LUA_NAMES, each built from the shard's prefix P), so each has one definition.
--
-- Calling convention of every script (keys.py builds the names):
--   KEYS[1] the shard's queue list (it routes the call to the shard's cluster slot)
--   ARGV[1] the shard's key prefix P, e.g. 'atp:{NS}:'  ARGV[2] log record cap
--   ARGV[3] shards S  ARGV[4] this shard i (a shard's task ids are seq * S + i)
--   the script's own arguments: arg(1), arg(2), ...
-- Every key a script touches is P plus a fixed word, a number or a digest: all of
-- them share the namespace's hash tag, so they live in the same slot.

-- Integers go to redis.call as text: it prints a Lua number with "%.17g" (libc's float
-- formatting, a tenth of a small script's time when every id and count went as a
-- number), and Lua's `..` prints one with "%.14g". TEXT: -1 to 9 (status codes, the
-- counts of one task) without string.format, about 1,500 instructions a call.
local TEXT = {[-1] = '-1', [0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}
local function istr(n) return TEXT[n] or string.format('%d', n) end
-- The other way (tonumber is libc's strtod, about a thousand instructions): `num` of
-- a small count or a status code is a table lookup.
local NUM = {['-1'] = -1, ['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6, ['7'] = 7,
             ['8'] = 8, ['9'] = 9}
local function num(s) return NUM[s] or tonumber(s) end

-- The state of one call, every piece of it (begin_call sets each at the start of a
-- call: as a Redis Function, the library keeps its locals from one call to the next).
local LOG_CAP, SHARDS, SHARD, now_cached, config_cache, pause_state, stamp_ms, stamp, text_ms, ms_str, types_seen
local function begin_call()
  LOG_CAP, SHARDS, SHARD = num(ARGV[2]), num(ARGV[3]), num(ARGV[4])
  now_cached, config_cache, pause_state, stamp_ms, stamp, text_ms, ms_str = nil, nil, nil, nil, nil, nil, nil
  types_seen = false  -- load_type looked at types_memo's freshness
end

-- What outlives a call (a Functions library keeps it; under EVAL each call starts
-- afresh): the types read before, good for a second while the config's `types`
-- revision is the one they were read at (a change by another writer: an older client,
-- redis-cli, is seen within the second), forgotten when the prefix changes.
local types_memo, types_rev, types_at, types_count
local function forget_memos() types_memo, types_rev, types_at, types_count = {}, nil, 0, 0 end
forget_memos()
local NARG = 4
local function arg(i) return ARGV[NARG + i] end

local COUNTER = {[S_ACCEPTED] = 'accepted', [S_SCHEDULED] = 'scheduled', [S_RUNNING] = 'running',
                 [S_PAUSED] = 'paused', [S_FINISHED] = 'finished_total', [S_FAILED] = 'failed_total'}

local function is_live(s) return s == S_SCHEDULED or s == S_RUNNING or s == S_PAUSED end
local function is_terminal(s) return s == S_FINISHED or s == S_FAILED end

-- Milliseconds since the epoch, from the Redis clock (one clock for every host).
-- Read once per call: every change one script makes happens at the same time.
local function now_ms()
  if not now_cached then
    local t = redis.call('TIME')
    now_cached = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_cached
end

-- A log record: '<unix time with ms> <status code> <message>'. User text is
-- concatenated, never passed to string.format('%s'), which stops at a NUL byte.
local function log_record(now, code, msg)
  if now ~= stamp_ms then stamp_ms, stamp = now, string.format('%d.%03d ', math.floor(now / 1000), now % 1000) end
  return stamp .. TEXT[code] .. ' ' .. msg
end

-- A time in ms as text (a call writes its one time to several sorted sets).
local function ms_text(ms)
  if ms ~= text_ms then text_ms, ms_str = ms, istr(ms) end
  return ms_str
end

-- A new revision of the shard's types (a registration, a removal): scripts read them
-- again. The time, so that a revision never repeats, even after the keys were deleted.
local function types_changed()
  local t = redis.call('TIME')
  redis.call('HSET', K_CONFIG, 'types', t[1] .. '.' .. t[2])
end

-- The id index: task ids in buckets of IDS_PER_BUCKET per shard, a hash each.
local function bucket_of(id) return math.floor(id / (IDS_PER_BUCKET * SHARDS)) end
local function bucket_named(n) return P_IDS .. istr(n) end
local function bucket_key(id) return bucket_named(bucket_of(id)) end

-- A stored number of seconds, or `default` when it is missing, not finite or absurd
-- (a hand-edited type): the scripts never compute with inf or NaN.
local MAX_SECONDS = 1e9
local function seconds(v, default)
  local n = tonumber(v)
  if not n or n ~= n or n > MAX_SECONDS or n < -MAX_SECONDS then return default end
  return n
end

-- The shard's settings, read once per call: the queue limit, the events stream's cap
-- and the revision of the types (register_type and unregister_type set it: the time).
local function config()
  if not config_cache then
    local v = redis.call('HMGET', K_CONFIG, 'max_queue_size', 'max_events', 'types')
    config_cache = {limit = num(v[1] or DEFAULT_QUEUE_LIMIT) or DEFAULT_QUEUE_LIMIT,
                    events = tonumber(v[2] or DEFAULT_MAX_EVENTS) or DEFAULT_MAX_EVENTS, types = v[3] or ''}
  end
  return config_cache
end

-- The type named `name`: its key, its live set (every SCHEDULED, RUNNING or PAUSED
-- task of the type, scored by the time of its last status change, so the type's
-- current timeout decides what is overdue) and settings, or nil when it is not
-- registered. Kept in types_memo (see above) and shared between calls: its users never
-- change it.
local function load_type(name)
  if not types_seen then
    local rev, now = config().types, now_ms()
    if rev ~= types_rev or now - types_at > 1000 or now < types_at or types_count >= 1000 then
      types_memo, types_rev, types_at, types_count = {}, rev, now, 0
    end
    types_seen = true
  end
  local cached = types_memo[name]
  if cached ~= nil then return cached or nil end
  local n = redis.call('HGET', K_TYPES, name)
  local ty = false
  if n then
    local key = P_TYPE .. n
    local v = redis.call('HMGET', key, 'handler', 'timeout', 'timeret', 'maxrestart', 'retries', 'retry_delay',
                         'retry_backoff', 'retry_max_delay')
    ty = {name = name, key = key, live = key .. ':live', handler = v[1] or '', timeout = seconds(v[2], 0),
          timeret = seconds(v[3], -1), maxrestart = math.max(0, math.floor(seconds(v[4], 0))),
          retries = math.max(0, math.floor(seconds(v[5], 0))), retry_delay = math.max(0, seconds(v[6], 1)),
          retry_backoff = math.max(1, seconds(v[7], 2)), retry_max_delay = math.max(0, seconds(v[8], 3600))}
  end
  types_memo[name], types_count = ty, types_count + 1
  return ty or nil
end

-- A task's type; a task outlives its type only if someone deleted keys by hand.
local ORPHAN = {timeout = 0, timeret = -1, maxrestart = 0, handler = '', retries = 0}
local function type_of(t) return load_type(t.type) or ORPHAN end

-- The task stored under `key` if it is task `id`, else nil.
local function load_task_at(id, key)
  local v = redis.call('HMGET', key, 'id', 'type', 'ident', 'status', 'run', 'odig', 'restarts', 'nlog', 'token',
                      'nq', 'due', 'retries', 'prio', 'watch', 'cancelled', 'parked')
  if v[1] ~= id and v[1] ~= istr(id) then return nil end
  return {id = tonumber(v[1]), sid = v[1], key = key, type = v[2], ident = v[3], status = num(v[4]),
          run = v[5] and num(v[5]) or 0, odig = v[6], restarts = v[7] and num(v[7]) or 0,
          nlog = v[8] and num(v[8]) or 1, token = v[9], nq = v[10] and num(v[10]) or 0,
          due = tonumber(v[11]), retries = v[12] and num(v[12]) or 0, prio = v[13], watch = v[14],
          cancelled = v[15], parked = v[16]}
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
-- the next claim reuses that run number but never that token. A task whose run is
-- over other than by the run itself (recovered, put back, ended by an operator)
-- has no token, so its old run is refused even once the task is terminal.
local function fence(t, token)
  if token ~= '' and (token ~= t.token or not is_live(t.status)) then
    return {E_STALE, t.run, t.status, t.cancelled and 1 or 0}
  end
  return nil
end

-- The run of task `t` is over without the run having ended it: fence it out.
local function unfence(t)
  if t.token then
    redis.call('HDEL', t.key, 'token')
    t.token = nil
  end
end

local pause  -- defined in _control.lua: what is paused, read once per call

-- The queue size is the counter K_QUEUED, kept exact by every script: every ACCEPTED
-- task, ready (in a queue list), delayed (in K_DELAYED until its due time) or parked
-- (set aside while its type is paused). The wake marker exists while claimable tasks
-- do; with no ready task the queue lists go (they hold only entries of tasks that left
-- early, see unqueue), and at 0 the counter too.
-- Returns the new queue size and the claimable part of it (0 while the namespace is
-- paused; nil after additions that found the wake marker: nothing to change). `plain`:
-- the caller knows nothing is delayed, parked or paused.
local function queued_delta(n, plain)
  local size = redis.call('INCRBY', K_QUEUED, istr(n))
  if size <= 0 then
    redis.call('DEL', K_WAKE, K_QUEUE, K_QUEUED)
    return 0, 0
  end
  if n > 0 and redis.call('EXISTS', K_WAKE) == 1 then return size, nil end
  local p = pause()
  local ready = plain and size or size - redis.call('ZCARD', K_DELAYED) - p.parked
  if ready <= 0 then
    redis.call('DEL', K_WAKE, K_QUEUE)
    for _, l in ipairs(redis.call('ZRANGE', K_LEVELS, 0, -1)) do redis.call('DEL', P_LEVEL .. l) end
    redis.call('DEL', K_LEVELS)
    return size, 0
  elseif p.all then
    redis.call('DEL', K_WAKE)
    return size, 0
  end
  redis.call('ZADD', K_WAKE, '0', 'wake')
  return size, ready
end

-- The queue list of task `t`'s priority level ('prio' absent: 0, the default list).
local function queue_list(t)
  if not t.prio then return K_QUEUE end
  redis.call('ZADD', K_LEVELS, tonumber(t.prio), t.prio)
  return P_LEVEL .. t.prio
end

-- Claimable tasks: ACCEPTED, neither delayed nor parked, and the namespace not paused.
local function ready_count()
  local p = pause()
  if p.all then return 0 end
  return tonumber(redis.call('GET', K_QUEUED) or '0') - redis.call('ZCARD', K_DELAYED) - p.parked
end

-- Milliseconds until the next delayed task is due (0: due now), or -1 with none.
local function next_due_in(now)
  local first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if not first[1] then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end

-- Task `t`'s queue entry: its id, and from its second time in the queue on, ':<n>'
-- with the task's `nq` (times re-queued), so an entry left behind is never mistaken
-- for the task's current one.
local function queue_entry(t)
  if t.nq == 0 then return t.sid end
  return t.sid .. ':' .. istr(t.nq)
end

-- Task `t` (ACCEPTED) leaves the queue other than by a claim (cancel, delete, start
-- by hand). A ready task's entry stays where it is, so this costs O(1) at any queue
-- length; claims drop entries that are not their task's current one (see claim). A
-- delayed task leaves the delayed set (O(log n)).
local function unqueue(t)
  if t.due then
    redis.call('ZREM', K_DELAYED, queue_entry(t))
    redis.call('HDEL', t.key, 'due')
    t.due = nil
  elseif t.parked then  -- its parked entry stays behind too; resuming drops it
    redis.call('HDEL', t.key, 'parked')
    t.parked = nil
    pause().parked = redis.call('HINCRBY', K_PAUSED, 'parked', -1)
  end
  queued_delta(-1)
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
  if pin_delta ~= 0 then pins = redis.call('HINCRBY', b, 'pins', istr(pin_delta))
  else pins = tonumber(redis.call('HGET', b, 'pins') or '0') end
  if pins > 0 then
    if pin_delta > 0 then redis.call('PERSIST', b) end
  else
    settle_bucket(b)
  end
end

-- Appends log records (one, or two with `via`) and trims the log to LOG_CAP records.
-- A log written under a larger cap (another client's setting) is trimmed whole.
local function append_log(t, new, now, msg, via, via_msg)
  local n = t.nlog + 1
  if via then
    local last = istr(n + 1)
    redis.call('HSET', t.key, 'status', TEXT[new], 'nlog', last, 'log:' .. istr(n), log_record(now, via, via_msg),
               'log:' .. last, log_record(now, new, msg))
    n = n + 1
  else
    local ns = istr(n)
    redis.call('HSET', t.key, 'status', TEXT[new], 'nlog', ns, 'log:' .. ns, log_record(now, new, msg))
  end
  t.status, t.nlog = new, n
  local upto = n - LOG_CAP
  if upto < 1 then return end
  local added = via and 2 or 1
  local fields = {}
  for i = math.max(1, upto - added + 1), upto do fields[#fields + 1] = 'log:' .. i end
  redis.call('HDEL', t.key, unpack(fields))
  local older = upto - added
  if older >= 1 and redis.call('HEXISTS', t.key, 'log:' .. older) == 1 then
    local stale = {}
    for _, f in ipairs(redis.call('HKEYS', t.key)) do
      local k = tonumber(string.match(f, '^log:(%d+)$'))
      if k and k <= older then stale[#stale + 1] = f end
    end
    redis.call('HDEL', t.key, unpack(stale))
  end
end

-- Someone waits for task `t` to end (wait_task: watch.lua set its `watch` field): the
-- end is pushed to the list `<task key>:done`, where the waiter blocks with a BLMOVE
-- of the list onto itself, so every waiter is served; it lives a minute, enough for a
-- waiter between its look at the task and its wait.
local function signal_end(t, code)
  local done = t.key .. ':done'
  redis.call('HDEL', t.key, 'watch')
  t.watch = nil
  redis.call('RPUSH', done, code)
  redis.call('PEXPIRE', done, 60000)
end

local offer  -- defined below: a task that became ACCEPTED goes to a waiter or the queue
local promote  -- defined below: due delayed tasks join the queue
local emit  -- defined in _control.lua: an event for a status change
local index_end  -- defined in _control.lua: a task enters or leaves its type's ended index

-- Moves task `t` (of type `ty`) to status `new`, keeping every index in step:
-- queue, live set, owner's set, per-type counters, retention TTLs and the log.
-- t.popped: claim() took the id off the queue. `via`, `via_msg`: a status passed
-- through on the way (SCHEDULED, for a claim that starts the task), logged only.
-- Every value it writes is computed from sanitized numbers (load_type), so it cannot
-- fail half-way; the TTL is set after the last HSET, which must not re-create a key.
local function set_status(t, ty, new, now, msg, via, via_msg)
  local old, id = t.status, t.sid
  if old == S_ACCEPTED and new ~= S_ACCEPTED and not t.popped then unqueue(t) end
  if ty.live then
    if is_live(new) then redis.call('ZADD', ty.live, ms_text(now), id)
    elseif is_live(old) then redis.call('ZREM', ty.live, id) end
  end
  if is_live(old) and not is_live(new) and t.odig then
    redis.call('SREM', P_OWNED .. t.odig, id)
    redis.call('HDEL', t.key, 'odig')
    t.odig = nil
  end
  if new == S_ACCEPTED then unfence(t) end
  if ty.key and old ~= new then
    if not is_terminal(old) then redis.call('HINCRBY', ty.key, COUNTER[old], '-1') end
    if not (is_terminal(old) and is_terminal(new)) then redis.call('HINCRBY', ty.key, COUNTER[new], '1') end
  end
  append_log(t, new, now, msg, via, via_msg)
  emit(id, t.type, t.ident, new, msg)  -- one event, also for a claim that starts its task (passing SCHEDULED)
  if ty.key and (is_terminal(new) or is_terminal(old)) then index_end(t, ty, old, new, now) end
  if t.watch and is_terminal(new) then signal_end(t, new) end
  if is_terminal(new) then
    local was_pinned = not is_terminal(old) or redis.call('PTTL', t.key) == -1
    if ty.timeret > 0 then
      local ttl = math.max(1, math.ceil(ty.timeret * 1000))
      redis.call('PEXPIRE', t.key, istr(ttl))
      update_bucket(t.id, was_pinned and -1 or 0, now + ttl)
    elseif not was_pinned then
      redis.call('PERSIST', t.key)
      update_bucket(t.id, 1, nil)
    end
  elseif is_terminal(old) and redis.call('PTTL', t.key) ~= -1 then
    redis.call('PERSIST', t.key)
    update_bucket(t.id, 1, nil)
  end
  if new == S_ACCEPTED and old ~= S_ACCEPTED then offer(t, ty, now) end
end

-- Removes every trace of task `t`: its hash, queue entry, deadline, ownership,
-- live counter and id-bucket entry.
local function forget(t)
  local id = t.sid
  local ty = type_of(t)
  if t.status == S_ACCEPTED then unqueue(t) end
  if is_live(t.status) then
    if ty.live then redis.call('ZREM', ty.live, id) end
    if t.odig then redis.call('SREM', P_OWNED .. t.odig, id) end
  end
  if ty.key and not is_terminal(t.status) then redis.call('HINCRBY', ty.key, COUNTER[t.status], '-1') end
  if ty.key and is_terminal(t.status) then index_end(t, ty, t.status, S_UNDEFINED, 0) end
  emit(id, t.type, t.ident, S_UNDEFINED, 'deleted')
  local pinned = not is_terminal(t.status) or redis.call('PTTL', t.key) == -1
  if t.watch then signal_end(t, S_UNDEFINED) end  -- deleted: its waiters look again, and learn it
  redis.call('DEL', t.key)
  redis.call('HDEL', bucket_key(t.id), id)
  update_bucket(t.id, pinned and -1 or 0, nil)
end

-- A live task whose run is gone (timed out, or its worker died): back to the
-- queue while it has restarts left, else FAILED. Returns the new status.
local function recover(t, ty, now, msg, why)
  if msg == '' then msg = why end
  unfence(t)
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

-- Ends a run (FINISHED or FAILED). A run ending the task again as it already ended
-- it (a repeat after a lost reply) changes nothing; nor does if_unfinished on an ended
-- task. A failure with `retry` ('auto': the type's backoff, `jitter` in [0, 1) the
-- full-jitter fraction; or a number of seconds the handler asked for) goes back to
-- the queue delayed while the type's `retries` budget lasts, counted apart from
-- restarts. Returns 1 (ended), 2 (retry scheduled), 0 (already ended),
-- E_TASK_NOT_FOUND or the fence's refusal.
local function end_run(id, token, outcome, msg, if_unfinished, retry, jitter)
  local t = load_task(id)
  if not t then return E_TASK_NOT_FOUND end
  if is_terminal(t.status) and token == t.token and (if_unfinished or t.status == outcome) then return 0 end
  if is_terminal(t.status) and token == '' and if_unfinished then return 0 end
  local refused = fence(t, token)
  if refused then return refused end
  if token == '' then unfence(t) end
  local ty, now = type_of(t), now_ms()
  if outcome == S_FAILED and retry and retry ~= '' then
    if t.retries < ty.retries then
      local delay = tonumber(retry)
      if retry == 'auto' then
        delay = math.min(ty.retry_max_delay, ty.retry_delay * ty.retry_backoff ^ t.retries) * (tonumber(jitter) or 1)
      end
      t.retries = t.retries + 1
      redis.call('HSET', t.key, 'retries', t.retries)
      t.due = now + math.ceil(delay * 1000)
      set_status(t, ty, S_ACCEPTED, now,
                 string.format('retry %d of %d in %.3f s: ', t.retries, ty.retries, delay) .. msg)
      return 2
    end
    if ty.retries > 0 or retry ~= 'auto' then
      msg = msg .. string.format('; no retry left (%d of %d used)', t.retries, ty.retries)
    end
  end
  set_status(t, ty, outcome, now, msg)
  return 1
end
