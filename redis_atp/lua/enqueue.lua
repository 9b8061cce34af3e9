-- enqueue.lua: create tasks (status ACCEPTED, first log record) at the tail of
-- the queue, each after its own queue-size check; one call takes one task
-- (enqueueTask) or many (enqueue_many), and each task is created whole or not at all.
-- KEYS, ARGV[1..5]: the common convention (_prelude.lua).
-- arg(1) max queue size (<= 0: no limit)  arg(2) number of tasks N
-- then per task, 5 arguments: type, identifier, task digest, input (msgpack), message
-- Returns one entry per task: its new id, or E_TYPE_NOT_FOUND, E_QUEUE_FULL,
-- E_DUPLICATE, E_COLLISION (another (type, identifier) has the same digest).
local max_size, n = tonumber(arg(1)), tonumber(arg(2))
local now = now_ms()
local record = log_record(now, S_ACCEPTED, '')
local qlen = redis.call('LLEN', K_QUEUE)
local types, added, pushed, out = {}, {}, {}, {}
for i = 1, n do
  local base = 2 + (i - 1) * 5
  local name, ident, digest, input, msg = arg(base + 1), arg(base + 2), arg(base + 3), arg(base + 4), arg(base + 5)
  local ty = types[name]
  if ty == nil then
    ty = load_type(name) or false
    types[name] = ty
  end
  if not ty then
    out[i] = E_TYPE_NOT_FOUND
  elseif max_size > 0 and qlen >= max_size then
    out[i] = E_QUEUE_FULL
  else
    local key = P_TASK .. digest
    local seen = redis.call('HMGET', key, 'type', 'ident')
    if seen[1] then
      out[i] = (seen[1] == name and seen[2] == ident) and E_DUPLICATE or E_COLLISION
    else
      local id = redis.call('INCR', K_SEQ)
      redis.call('HSET', key, 'id', id, 'type', name, 'ident', ident, 'status', S_ACCEPTED,
                 'input', input, 'log:1', msg == '' and record or log_record(now, S_ACCEPTED, msg))
      local b = bucket_key(id)
      redis.call('HSET', b, id, digest)
      if redis.call('HINCRBY', b, 'pins', 1) == 1 then redis.call('PERSIST', b) end
      pushed[#pushed + 1] = id
      added[ty.key] = (added[ty.key] or 0) + 1
      qlen = qlen + 1
      out[i] = id
    end
  end
end
for i = 1, #pushed, 1000 do
  redis.call('RPUSH', K_QUEUE, unpack(pushed, i, math.min(i + 999, #pushed)))
end
if #pushed > 0 then redis.call('ZADD', K_WAKE, 0, 'wake') end
for key, count in pairs(added) do redis.call('HINCRBY', key, 'accepted', count) end
return out
