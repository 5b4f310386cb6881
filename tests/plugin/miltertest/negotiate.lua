-- ISC licence; see LICENSE.
-- haul-milter asks for the edits it makes and for nothing it does not
-- need: no body, no HELO, no end-of-header; every stage it needs stays.
dofile(DIR .. "/common.lua")

run(function()
	local conn = connect()
	for _, a in ipairs({ SMFIF_ADDHDRS, SMFIF_CHGHDRS, SMFIF_ADDRCPT,
	    SMFIF_DELRCPT }) do
		check(mt.test_action(conn, a), "action not requested: " .. a)
	end
	for _, a in ipairs({ SMFIF_CHGBODY, SMFIF_QUARANTINE,
	    SMFIF_CHGFROM }) do
		check(not mt.test_action(conn, a), "needless action: " .. a)
	end
	for _, o in ipairs({ SMFIP_NOBODY, SMFIP_NOHELO, SMFIP_NOEOH }) do
		check(mt.test_option(conn, o), "step not skipped: " .. o)
	end
	for _, o in ipairs({ SMFIP_NOHDRS, SMFIP_NORCPT, SMFIP_NOMAIL,
	    SMFIP_NOCONNECT }) do
		check(not mt.test_option(conn, o), "needed step skipped: " .. o)
	end
	mt.disconnect(conn)
end)
