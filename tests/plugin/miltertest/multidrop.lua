-- ISC licence; see LICENSE.
-- Multidrop: the recipient comes from the topmost Delivered-To, mapped
-- from the account's domain to the local one; anything else is refused
-- (this account has multidrop_unknown = reject).
dofile(DIR .. "/common.lua")

local P = { "<md@fetch.invalid>" }

run(function()
	local conn = connect()
	local r = message(conn, P, {
		{ "X-Haul-Token", TOKEN_MD },
		{ "Delivered-To", "Jane.Doe@example.org" },
		{ "Delivered-To", "catchall@example.org" },
	}, "M1")
	check(r == SMFIR_CONTINUE, "eom reply " .. tostring(r))
	check(mt.eom_check(conn, MT_RCPTADD, "<Jane.Doe@local.test>"),
	    "mapped recipient not added")
	check(mt.eom_check(conn, MT_RCPTDELETE, "<md@fetch.invalid>"),
	    "placeholder not removed")
	check(mt.eom_check(conn, MT_HDRADD, "X-Haul-Account", "md"),
	    "no X-Haul-Account: md")

	message(conn, P, {
		{ "X-Haul-Token", TOKEN_MD },
		{ "Delivered-To", "someone@elsewhere.test" },
	}, "M2")
	check(mt.getreply(conn) == SMFIR_REPLYCODE, "not refused")
	-- (miltertest matches a reply only with all three parts given)
	check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.1.1",
	    "haul-milter: no local recipient for account md: Delivered-To " ..
	    "is not an address in multidrop_domains"), "not 550 5.1.1")

	message(conn, P, { { "X-Haul-Token", TOKEN_MD } }, "M3")
	check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.1.1",
	    "haul-milter: no local recipient for account md: Delivered-To " ..
	    "missing at the configured hop"), "missing header not refused")
	mt.disconnect(conn)
end)
