-- ISC licence; see LICENSE.
-- SIGUSR1 reloads without a restart: the same running filter maps the
-- account to the new deliver_to.  SIGHUP would stop libmilter; not used.
dofile(DIR .. "/common.lua")

local function copy(from, to)
	local f = assert(io.open(from, "rb"))
	local data = f:read("*a")
	f:close()
	f = assert(io.open(to, "wb"))
	f:write(data)
	f:close()
end

local function first_rcpt(conn, want)
	local r = message(conn, { "<acme@fetch.invalid>" },
	    { { "X-Haul-Token", TOKEN_ACME } }, "L1")
	check(r == SMFIR_CONTINUE, "eom reply " .. tostring(r))
	return mt.eom_check(conn, MT_RCPTADD, want)
end

run(function()
	local conn = connect()
	check(first_rcpt(conn, "<alice@local.test>"), "before: not alice")
	mt.disconnect(conn)

	copy(CONF_NEW, CONF)
	mt.signal(SIG_RELOAD)
	mt.sleep(0.5)
	conn = mt.connect("unix:" .. SOCK, 40, 0.05)
	check(conn ~= nil, "filter gone after the reload signal")
	mt.macro(conn, SMFIC_CONNECT, "{daemon_name}", "fetch")
	ok(mt.conninfo(conn, "localhost", "127.0.0.1"), "conninfo")
	check(first_rcpt(conn, "<carol@local.test>"), "after: not carol")
	mt.disconnect(conn)
end)
