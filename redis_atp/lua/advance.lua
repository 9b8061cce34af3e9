-- advance.lua: the worker's step, one round trip per task: end the run that just
-- finished (unless its handler already ended it), then start the next task: the one
-- handed to this owner if its mailbox holds one, else up to `count` from the queue
-- (claimed and started). Each part is the same state change as finish.lua and
-- dequeue.lua. A task is started here, in the step that confirms the claim, and its
-- handler runs only after this reply. Finding no work, the owner can register as a
-- waiter (see hand_off): the next task that becomes ACCEPTED is then claimed for it
-- and its id put in its mailbox (take_handoff.lua starts it).
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) owner  arg(2) owner digest  arg(3) ended task id ('' = none)  arg(4) its
-- token  arg(5) its outcome (FINISHED or FAILED)  arg(6) its message  arg(7) message
-- of RUNNING records  arg(8) tasks to claim  arg(9) token base (random; claimed tasks
-- get base, base + 1, ...)  arg(10) token for a hand-off if nothing is started ('' =
-- do not wait; unsharded only)  arg(11) '1': the owner may be a waiter (it registered
-- since it last started a task), so look at its mailbox first and stop it waiting
-- when it starts a task; '0' spares a busy owner those two calls  arg(12) retry of a
-- FAILED end ('' none, 'auto', or seconds; see end_run)  arg(13) its jitter fraction
-- Returns {ending, ready, due_in, id, token, type, identifier, handler, input, ...}:
-- ending is 1 (ended), 2 (retry scheduled), 0 (already ended, or none),
-- E_TASK_NOT_FOUND or E_STALE; ready is the shard's ready tasks after the step (no
-- task and ready 0: the owner now waits, if it asked to; no task and ready > 0: the
-- claim stopped at its pop limit); due_in: ms until the next delayed task is due
-- (-1: none), for how long to wait.
local ending = 0
if arg(3) ~= '' then
  ending = end_run(arg(3), arg(4), tonumber(arg(5)), arg(6), true, arg(12), arg(13))
  if type(ending) == 'table' then ending = ending[1] end
end
local owner, odig, count, maybe_waiting = arg(1), arg(2), tonumber(arg(8)), arg(11) == '1'
local out, queued = count > 0 and maybe_waiting and take_mailbox(odig, arg(7)) or {}, nil
if #out == 0 and count > 0 then
  out, queued = claim(owner, odig, count, '', arg(7), tonumber(arg(9)), true)
end
queued = queued or ready_count()
local due_in = -1
if #out > 0 then
  if maybe_waiting then stop_waiting(odig) end
else
  due_in = next_due_in(now_ms())
  if arg(10) ~= '' and SHARDS == 1 and queued == 0 then
    if redis.call('HSET', K_WAITING, odig, arg(10) .. ' ' .. owner) == 1 then redis.call('RPUSH', K_WAITERS, odig) end
  end
end
table.insert(out, 1, due_in)
table.insert(out, 1, queued)
table.insert(out, 1, ending)
return out
