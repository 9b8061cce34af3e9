-- advance.lua: the worker's step, one round trip per task: end the run that just
-- finished (unless its handler already ended it), then claim the next task and
-- start it. Each part is the same state change as finish.lua and dequeue.lua.
-- KEYS[1..5], ARGV[1..7]: the common convention (_prelude.lua).
-- arg(1) owner  arg(2) owner digest  arg(3) ended task id ('' = none)  arg(4) its
-- run token  arg(5) its outcome (FINISHED or FAILED)  arg(6) its message
-- arg(7) tasks to claim  arg(8) message of the RUNNING record
-- Returns {ending, id, run, type, identifier, handler, input, ...}: ending is 1
-- (ended), 0 (already ended, or no task to end), E_TASK_NOT_FOUND or E_STALE.
local ending = 0
if arg(3) ~= '' then
  ending = end_run(arg(3), arg(4), tonumber(arg(5)), arg(6), true)
  if type(ending) == 'table' then ending = ending[1] end
end
local out = claim(arg(1), arg(2), tonumber(arg(7)), '', arg(8))
table.insert(out, 1, ending)
return out
