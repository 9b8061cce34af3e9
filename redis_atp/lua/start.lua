-- start.lua: a dequeued task's handler starts (startTask): status RUNNING. Unfenced,
-- an ACCEPTED task starts too (the seed's daemon starts tasks from a local queue, and a
-- zombie sweep may have re-enqueued one meanwhile): it leaves the queue, so it cannot
-- run again from its old queue entry.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id  arg(2) run token ('' = unfenced)  arg(3) message
-- Returns {type, identifier, handler, input}, or E_TASK_NOT_FOUND,
-- {E_STALE, run, status}, {E_INVALID_TRANSITION, status} (a finished task).
local t = load_task(arg(1))
if not t then return E_TASK_NOT_FOUND end
local refused = fence(t, arg(2))
if refused then return refused end
if not (is_live(t.status) or t.status == S_ACCEPTED) then return {E_INVALID_TRANSITION, t.status} end
local ty = type_of(t)
set_status(t, ty, S_RUNNING, now_ms(), arg(3))
return {t.type, t.ident, ty.handler, redis.call('HGET', t.key, 'input')}
