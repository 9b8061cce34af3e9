-- dequeue.lua: take up to `count` tasks from the head of the queue for one owner:
-- each gets status SCHEDULED, the owner, a new run number (its fencing token) and
-- a deadline; its id joins the owner's set. With `start`, each also goes straight
-- on to RUNNING and its type, identifier, handler and input come back (the
-- worker's claim: one round trip instead of dequeue + start).
-- KEYS, ARGV[1..5]: the common convention (_prelude.lua).
-- arg(1) owner (serverID)  arg(2) owner digest  arg(3) count  arg(4) message
-- arg(5) start ('1' or '0')  arg(6) message of the RUNNING record (with start)
-- Returns {id, run, ...} per task, plus {type, identifier, handler, input} per
-- task with start; {} when the queue is empty.
local owner, odig, count, msg, start = arg(1), arg(2), tonumber(arg(3)), arg(4), arg(5) == '1'
local ids = redis.call('LPOP', K_QUEUE, count)
if not ids then
  redis.call('DEL', K_WAKE)
  return {}
end
local now = now_ms()
local owned = P_OWNED .. odig
local types, out = {}, {}
for _, id in ipairs(ids) do
  local t = load_task(id)
  if t and t.status == S_ACCEPTED then
    t.popped = true
    local ty = types[t.type]
    if ty == nil then
      ty = type_of(t)
      types[t.type] = ty
    end
    t.run = t.run + 1
    t.odig = odig
    redis.call('HSET', t.key, 'owner', owner, 'odig', odig, 'run', t.run)
    redis.call('SADD', owned, id)
    set_status(t, ty, S_SCHEDULED, now, msg)
    out[#out + 1] = t.id
    out[#out + 1] = t.run
    if start then
      set_status(t, ty, S_RUNNING, now, arg(6))
      out[#out + 1] = t.type
      out[#out + 1] = t.ident
      out[#out + 1] = ty.handler
      out[#out + 1] = redis.call('HGET', t.key, 'input')
    end
  end
end
-- Pass the wake-up on to the next waiter while work remains; clear it once the queue is empty.
if redis.call('LLEN', K_QUEUE) > 0 then redis.call('ZADD', K_WAKE, 0, 'wake') else redis.call('DEL', K_WAKE) end
return out
