-- release_owned.lua: an owner hands back every live task it holds except those it
-- is running: after a reconnect (a claim whose reply was lost left it owning tasks
-- it never saw) and at a worker's cold shutdown. The tasks go back to ACCEPTED at
-- the tail of the queue; this is not a restart (their handler never ran or was
-- stopped in order), so maxrestart is not charged.
-- KEYS[1..5], ARGV[1..5]: the common convention (_prelude.lua).
-- arg(1) owner digest  arg(2) message  arg(3...) ids to keep (the owner is running them)
-- Returns {id, type, identifier, new status, ...} of the tasks released.
local keep = {}
for i = 3, #ARGV - 5 do keep[arg(i)] = true end
local now = now_ms()
return for_owned(arg(1), keep, function(t, ty) set_status(t, ty, S_ACCEPTED, now, arg(2)) end)
