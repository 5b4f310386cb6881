/* ISC licence; see LICENSE. */
#include "haul/proto.h"

const char *
proto_status_name(enum proto_status s)
{
	switch (s) {
	case PS_MORE: return "more";
	case PS_STARTTLS: return "starttls";
	case PS_DONE: return "done";
	case PS_ERROR: return "error";
	}
	return "?";
}

const char *
err_class_name(enum err_class c)
{
	switch (c) {
	case ERR_NONE: return "none";
	case ERR_NETWORK: return "network";
	case ERR_TLS: return "tls";
	case ERR_PROTOCOL: return "protocol";
	case ERR_AUTH: return "auth";
	case ERR_TEMP: return "temporary";
	case ERR_MTA: return "mta";
	case ERR_CONFIG: return "config";
	case ERR_LOCAL: return "local";
	}
	return "?";
}
