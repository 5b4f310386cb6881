-- ISC licence; see LICENSE.
-- Without a token, every X-Haul-* field (any case) and the trace header
-- are removed and nothing is added: nobody outside can tag an account.
dofile(DIR .. "/common.lua")

run(function()
	local conn = connect("smtpd")
	local r = message(conn, { "<bob@local.test>" }, {
		{ "X-Haul-Account", "evil" },
		{ "X-HAUL-ACCOUNT", "evil again" },
		{ "X-Haul-Trace", "account=acme; mailbox=INBOX; uid=0.1" },
		{ "x-haul-misc", "1" },
		{ "X-Haulage", "not ours" },
		{ "Subject", "outside" },
	}, "S1")
	check(r == SMFIR_CONTINUE, "eom reply " .. tostring(r))
	check(mt.eom_check(conn, MT_HDRDELETE, "X-Haul-Account"),
	    "X-Haul-Account kept")
	check(mt.eom_check(conn, MT_HDRDELETE, "X-Haul-Trace"),
	    "X-Haul-Trace kept")
	check(mt.eom_check(conn, MT_HDRDELETE, "x-haul-misc"),
	    "x-haul-misc kept")
	check(not mt.eom_check(conn, MT_HDRDELETE, "X-Haulage"),
	    "X-Haulage removed")
	check(not mt.eom_check(conn, MT_HDRADD), "header added")
	check(not mt.eom_check(conn, MT_RCPTADD, "<alice@local.test>"),
	    "recipient added")
	check(not mt.eom_check(conn, MT_RCPTDELETE, "<bob@local.test>"),
	    "recipient removed")
	mt.disconnect(conn)
end)
