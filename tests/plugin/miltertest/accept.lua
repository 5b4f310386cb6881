-- ISC licence; see LICENSE.
-- A valid token on the fetch listener: the placeholder is replaced by the
-- account's deliver_to, every X-Haul-* field goes, X-Haul-Account and the
-- trace header come in.  The connection goes on with untouched mail.
dofile(DIR .. "/common.lua")

run(function()
	local conn = connect()
	local r = message(conn, { "<acme@fetch.invalid>" }, {
		{ "Received", "from pop.example.net by mx" },
		{ "X-Haul-Token", TOKEN_ACME },
		{ "X-Haul-Account", "evil" },
		{ "Subject", "fetched" },
	}, "Q1A2B3")
	check(r == SMFIR_CONTINUE, "eom reply " .. tostring(r))
	check(mt.eom_check(conn, MT_HDRDELETE, "X-Haul-Token"),
	    "token not removed")
	check(mt.eom_check(conn, MT_HDRDELETE, "X-Haul-Account"),
	    "forged account not removed")
	check(mt.eom_check(conn, MT_RCPTADD, "<alice@local.test>"),
	    "alice not added")
	check(mt.eom_check(conn, MT_RCPTADD, "<bob@local.test>"),
	    "bob not added")
	check(mt.eom_check(conn, MT_RCPTDELETE, "<acme@fetch.invalid>"),
	    "placeholder not removed")
	check(mt.eom_check(conn, MT_HDRADD, "X-Haul-Account", "acme"),
	    "no X-Haul-Account: acme")
	local trace = mt.getheader(conn, "X-Haul-Trace", 0)
	check(trace == "account=acme; mailbox=INBOX; uid=" .. UID_ACME ..
	    "; queue-id=Q1A2B3", "trace: " .. tostring(trace))

	-- Next message, same connection: plain mail is left alone.
	r = message(conn, { "<carol@local.test>" },
	    { { "Subject", "plain" } }, "Q2")
	check(r == SMFIR_CONTINUE, "plain eom reply " .. tostring(r))
	check(not mt.eom_check(conn, MT_HDRADD), "header added to plain")
	check(not mt.eom_check(conn, MT_HDRDELETE), "header removed")
	check(not mt.eom_check(conn, MT_RCPTADD, "<alice@local.test>"),
	    "recipient added")
	check(not mt.eom_check(conn, MT_RCPTDELETE, "<carol@local.test>"),
	    "recipient removed")
	mt.disconnect(conn)
end)
