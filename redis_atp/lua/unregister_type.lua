-- unregister_type.lua: one step of removing a task type. Walks the id buckets
-- first..last looking for tasks of the type; the step that reaches the last
-- bucket in use (from the seq counter) removes the type itself, atomically with
-- that final check, so no task enqueued meanwhile is missed.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) type name  arg(2) force ('1': delete the type's tasks)  arg(3) first bucket
-- arg(4) buckets to walk in this step  arg(5) '1': only check (a sharded namespace
-- checks every shard before removing the type from any)
-- Returns {0, next bucket, deleted} to continue, {1, 0, deleted} when the type is gone
-- (or, checking, found unused), E_TYPE_NOT_FOUND, or E_TYPE_IN_USE (without force, a
-- task of the type exists). The type's indexes and parked list go with it (UNLINK:
-- freed off Redis's main thread), and so does its pause.
local name, force = arg(1), arg(2) == '1'
local ty = load_type(name)
if not ty then return E_TYPE_NOT_FOUND end
if not force then
  local live = redis.call('HMGET', ty.key, 'accepted', 'scheduled', 'running', 'paused')
  for _, c in ipairs(live) do
    if tonumber(c or '0') > 0 then return E_TYPE_IN_USE end
  end
end
local first, step = tonumber(arg(3)), tonumber(arg(4))
local last = math.floor(tonumber(redis.call('GET', K_SEQ) or '0') / IDS_PER_BUCKET)
local deleted = 0
for b = first, math.min(last, first + step - 1) do
  local entries = redis.call('HGETALL', P_IDS .. b)
  for i = 1, #entries, 2 do
    local id = tonumber(entries[i])
    if id then
      local t = load_task_at(id, P_TASK .. entries[i + 1])
      if t and t.type == name then
        if not force then return E_TYPE_IN_USE end
        forget(t)
        deleted = deleted + 1
      end
    end
  end
end
if first + step - 1 < last then return {0, first + step, deleted} end
if arg(5) == '1' then return {1, 0, 0} end
redis.call('HDEL', K_TYPES, name)
types_changed()
redis.call('UNLINK', ty.key, ty.live, ty.key .. ':finished', ty.key .. ':failed', ty.key .. ':parked')
redis.call('HDEL', K_PAUSED, 't:' .. name)
settle_pause()
return {1, 0, deleted}
