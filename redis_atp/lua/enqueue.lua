-- enqueue.lua: create tasks (status ACCEPTED, first log record) at the tail of the
-- queue, each after its own size check against the namespace's limit; one call takes
-- one task or many, each created whole or not at all. While idle workers wait, each
-- new task is handed straight to one (see hand_off); a delayed one waits in the
-- delayed set until due (see promote), counted in the queue size and its limit. Each
-- new task is an ACCEPTED event.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua). The limit is the
-- shard's config hash's max_queue_size (<= 0: no limit; absent: the seed's
-- default) is the limit; sharded, a shard holds at most ceil(limit / shards).
-- arg(1) number of tasks N  arg(2) the batch's delay, ms ('' = none)  arg(3) its due
-- time, ms since the epoch ('' = none; not in the future: ready at once)  arg(4) its
-- priority level ('0': the default list), then per task, 5 arguments: type,
-- identifier, task digest, input (encoded), message
-- Returns one entry per task: its new id, or E_TYPE_NOT_FOUND, E_QUEUE_FULL,
-- E_DUPLICATE, E_COLLISION (another (type, identifier) has the same digest); then
-- the limit and, with a limit, the shard's queue size after the call.
local limit = config().limit
local max_size, n = limit > 0 and math.ceil(limit / SHARDS) or 0, tonumber(arg(1))
local now = now_ms()
local due = (arg(3) ~= '' and tonumber(arg(3))) or (arg(2) ~= '' and now + tonumber(arg(2))) or now
if due ~= due or due > now + 1e12 then return redis.error_reply('ERR invalid due time') end
local delayed, prio = due > now, arg(4) ~= '0' and arg(4) or nil
local due_text = delayed and istr(due)
local record = log_record(now, S_ACCEPTED, '')
local qlen = max_size > 0 and tonumber(redis.call('GET', K_QUEUED) or '0') or 0
local single = n == 1  -- one task: its id from INCR; more: the counter read once, written once
local seq, created = single and 0 or tonumber(redis.call('GET', K_SEQ) or '0'), 0
local added, buckets, bucket_order, pushed, held, out = {}, {}, {}, {}, {}, {}
local waiters = not delayed and SHARDS == 1 and redis.call('LLEN', K_WAITERS) > 0
for i = 1, n do
  local base = 4 + (i - 1) * 5
  local name, ident, digest, msg = arg(base + 1), arg(base + 2), arg(base + 3), arg(base + 5)
  local ty = load_type(name)
  if not ty then
    out[i] = E_TYPE_NOT_FOUND
  elseif max_size > 0 and qlen >= max_size then
    out[i] = E_QUEUE_FULL
  else
    local key = P_TASK .. digest
    if redis.call('EXISTS', key) == 1 then  -- an integer reply: cheaper than HMGET's for a new task
      local seen = redis.call('HMGET', key, 'type', 'ident')
      out[i] = (seen[1] == name and seen[2] == ident) and E_DUPLICATE or E_COLLISION
    else
      seq, created = single and redis.call('INCR', K_SEQ) or seq + 1, created + 1
      local id = seq * SHARDS + SHARD
      local sid = istr(id)
      redis.call('HSET', key, 'id', sid, 'type', name, 'ident', ident, 'status', TEXT[S_ACCEPTED],
                 'input', arg(base + 4), 'log:1', msg == '' and record or log_record(now, S_ACCEPTED, msg))
      local bn = bucket_of(id)  -- a bucket's key is named once per call
      if not buckets[bn] then buckets[bn], bucket_order[#bucket_order + 1] = {}, bn end
      local entries = buckets[bn]
      entries[#entries + 1], entries[#entries + 2] = sid, digest
      added[ty.key] = (added[ty.key] or 0) + 1
      out[i] = id
      emit(sid, name, ident, S_ACCEPTED, msg)
      local handed = waiters and hand_off({id = id, sid = sid, key = key, type = name, ident = ident, status = S_ACCEPTED,
                                           run = 0, restarts = 0, nlog = 1, nq = 0}, ty, now)
      if handed == false then waiters = false end  -- no waiter left (nil: this task's type is paused)
      if prio then redis.call('HSET', key, 'prio', prio) end
      if delayed then
        redis.call('HSET', key, 'due', due_text, 'nq', '1')
        held[#held + 1], held[#held + 2], qlen = due_text, sid .. ':1', qlen + 1
      elseif not handed then
        pushed[#pushed + 1] = sid
        qlen = qlen + 1
      end
    end
  end
end
if created > 0 then
  if not single then redis.call('SET', K_SEQ, istr(seq)) end
  for _, bn in ipairs(bucket_order) do
    local entries, b = buckets[bn], bucket_named(bn)
    redis.call('HSET', b, unpack(entries))
    local members = #entries / 2
    if redis.call('HINCRBY', b, 'pins', istr(members)) == members then redis.call('PERSIST', b) end
  end
  for i = 1, #pushed, 1000 do
    redis.call('RPUSH', queue_list({prio = prio}), unpack(pushed, i, math.min(i + 999, #pushed)))
  end
  if #pushed + hold(held, due) > 0 then queued_delta(#pushed + #held / 2) end
  for key, count in pairs(added) do redis.call('HINCRBY', key, 'accepted', istr(count)) end
end
out[n + 1] = limit
out[n + 2] = qlen
return out
