-- delete.lua: remove a task and every trace of it (deleteTask, deleteTaskByIdentifier):
-- its hash, queue entry, deadline, ownership, counter and id-bucket entry.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id, or '' to name the task by arg(2) digest, arg(3) type, arg(4) identifier
-- Returns the deleted task's id, or E_TASK_NOT_FOUND.
local t
if arg(1) ~= '' then
  t = load_task(arg(1))
else
  local key = P_TASK .. arg(2)
  local v = redis.call('HMGET', key, 'id', 'type', 'ident')
  if v[1] and v[2] == arg(3) and v[3] == arg(4) then t = load_task_at(v[1], key) end
end
if not t then return E_TASK_NOT_FOUND end
forget(t)
return t.id
