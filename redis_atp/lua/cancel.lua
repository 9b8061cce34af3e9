-- cancel.lua: cancel a task (cancel_task): a queued or delayed one leaves the queue, a
-- live one's run is fenced out; either ends FAILED with "cancelled" in its log and is
-- marked `cancelled`, so its run's next call is refused as TaskCancelled. A task that
-- ended already is left alone. Cancelling a live task bumps the config's `cancels`
-- counter, which busy workers read once a second to learn that they should look.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id  arg(2) message
-- Returns 1 (cancelled), 0 (it had ended already), or E_TASK_NOT_FOUND.
local t = load_task(arg(1))
if not t then return E_TASK_NOT_FOUND end
if is_terminal(t.status) then return 0 end
unfence(t)
redis.call('HSET', t.key, 'cancelled', 1)
if is_live(t.status) then redis.call('HINCRBY', K_CONFIG, 'cancels', 1) end
set_status(t, type_of(t), S_FAILED, now_ms(), arg(2) == '' and 'cancelled' or 'cancelled: ' .. arg(2))
return 1
