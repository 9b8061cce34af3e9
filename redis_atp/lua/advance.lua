-- advance.lua: the worker's step, one round trip per task: end the run that just
-- finished (unless its handler already ended it), then claim the next task and
-- start it. Each part is the same state change as finish.lua and dequeue.lua.
-- Finding no work, the owner can register as a waiter (see hand_off): the next
-- task that becomes ACCEPTED is then claimed for it and put in its mailbox.
-- KEYS[1..7], ARGV[1..8]: the common convention (_prelude.lua).
-- arg(1) owner  arg(2) owner digest  arg(3) ended task id ('' = none)  arg(4) its
-- run token  arg(5) its outcome (FINISHED or FAILED)  arg(6) its message
-- arg(7) tasks to claim  arg(8) message of the RUNNING record  arg(9) token base
-- (random; the claimed tasks get tokens base, base + 1, ...)  arg(10) token for a
-- hand-off if no task is queued ('' = do not wait; ignored when sharded)
-- Returns {ending, id, token, type, identifier, handler, input, ...}: ending is 1
-- (ended), 0 (already ended, or no task to end), E_TASK_NOT_FOUND or E_STALE.
local ending = 0
if arg(3) ~= '' then
  ending = end_run(arg(3), arg(4), tonumber(arg(5)), arg(6), true)
  if type(ending) == 'table' then ending = ending[1] end
end
local owner, odig = arg(1), arg(2)
local out = claim(owner, odig, tonumber(arg(7)), '', arg(8), tonumber(arg(9)))
if #out == 0 and arg(10) ~= '' and SHARDS == 1 and redis.call('LLEN', P_MAILBOX .. odig) == 0 then
  if redis.call('HSET', K_WAITING, odig, arg(10) .. ' ' .. owner) == 1 then redis.call('RPUSH', K_WAITERS, odig) end
end
table.insert(out, 1, ending)
return out
