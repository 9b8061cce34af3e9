-- progress.lua: a live task switches between RUNNING and PAUSED (pauseTask,
-- resumeTask, TaskStatus.setPaused/setRunning); the change refreshes its deadline,
-- so a long handler keeps its task by reporting progress.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id  arg(2) run token ('' = unfenced)  arg(3) new status (RUNNING or PAUSED)
-- arg(4) message
-- Returns 1, or E_TASK_NOT_FOUND, {E_STALE, run, status}, {E_INVALID_TRANSITION, status}
-- (the task is not SCHEDULED, RUNNING or PAUSED).
local t = load_task(arg(1))
if not t then return E_TASK_NOT_FOUND end
local refused = fence(t, arg(2))
if refused then return refused end
if not is_live(t.status) then return {E_INVALID_TRANSITION, t.status} end
set_status(t, type_of(t), tonumber(arg(3)), now_ms(), arg(4))
return 1
