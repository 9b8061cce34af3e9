-- finish.lua: a task ends FINISHED or FAILED (stopTaskSuccess, stopTaskFailure,
-- stopTaskSuccessIfNotFinished): its deadline and ownership go, the retention TTL
-- starts. Unfenced, any task may be ended (a queued one leaves the queue: an
-- operator's cancel) or re-stamped; a run may end only the task it still owns.
-- KEYS[1..7], ARGV[1..8]: the common convention (_prelude.lua).
-- arg(1) task id  arg(2) run token ('' = unfenced)  arg(3) FINISHED or FAILED
-- arg(4) message  arg(5) '1': do nothing if the task is FINISHED or FAILED already
-- Returns 1 (changed), 0 (already ended, with arg(5)), or E_TASK_NOT_FOUND,
-- {E_STALE, run, status}.
return end_run(arg(1), arg(2), tonumber(arg(3)), arg(4), arg(5) == '1')
