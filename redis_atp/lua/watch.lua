-- watch.lua: the first step of wait_task: a task that ended is answered at once;
-- for one that has not, the waiter's interest is recorded in the task (its `watch`
-- field) so that the script that ends it signals `<task key>:done` (see signal_end),
-- and a signal left from an earlier end of a re-run task is dropped. The waiter then
-- blocks on that list and, woken or not, calls this again: it cannot miss an end
-- that came before or during its wait.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id
-- Returns {status, 1} for an ended task, {status, 0, done list key} for one to wait
-- for, or E_TASK_NOT_FOUND.
local t = load_task(arg(1))
if not t then return E_TASK_NOT_FOUND end
if is_terminal(t.status) then return {t.status, 1} end
local done = t.key .. ':done'
if not t.watch then
  redis.call('DEL', done)
  redis.call('HSET', t.key, 'watch', 1)
end
return {t.status, 0, done}
