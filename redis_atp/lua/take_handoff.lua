-- take_handoff.lua: a waiting owner starts the task handed to it (see hand_off in
-- _prelude.lua), if its claim is still current: the task may have been deleted,
-- cancelled, recovered or put back since it was handed over. The worker sends this
-- right behind the BLMOVE that waited on its mailbox, in one write.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) owner digest  arg(2) message of the RUNNING record
-- Returns {id, token, type, identifier, handler, input}, or {} when nothing is current.
return take_mailbox(arg(1), arg(2)) or {}
