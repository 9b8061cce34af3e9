-- set_response.lua: store (or replace) a task's response and its MIME type. A run
-- may store it while it owns the task, and after it ended the task itself (the
-- seed's WCS-T handler calls setSuccess, then storeResponse), until the task is
-- claimed again or recovered.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id  arg(2) run token ('' = unfenced)  arg(3) response bytes
-- arg(4) response type ('str' or 'bytes')  arg(5) MIME type  arg(6) '1': only if the
-- task has no response yet (a handler's return value: what it stored wins)
-- Returns 1 (stored), 0 (one was there, with arg(6)), or E_TASK_NOT_FOUND,
-- {E_STALE, run, status}.
local t = load_task(arg(1))
if not t then return E_TASK_NOT_FOUND end
if not (is_terminal(t.status) and arg(2) == t.token) then
  local refused = fence(t, arg(2))
  if refused then return refused end
end
if arg(6) == '1' and redis.call('HEXISTS', t.key, 'response') == 1 then return 0 end
redis.call('HSET', t.key, 'response', arg(3), 'response_type', arg(4), 'mime', arg(5))
return 1
