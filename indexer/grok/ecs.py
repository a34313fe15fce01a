"""ECS mode (``ecs_compatibility = "v1"`` on a type): the same patterns, captured under the
Elastic Common Schema names Logstash 8's ECS pattern set uses (``[source][address]``,
``[process][pid]``, ...), stored nested.

The ECS set is derived from the classic one: each capture of a definition is renamed by the map of
its family (the pattern file it lives in, e.g. ``httpd``), then by the map shared by all
families; a capture no map names keeps its classic name (families without a map yet: aws, bacula,
bro, exim, firewalls, postgresql, mail, sshd). Values ECS types as numbers get ``:int``.
A type's own expressions are renamed with the shared map.
"""

from __future__ import annotations

import functools
import re

from indexer.grok.library import Definition, builtin_definitions

# names shared by the syslog-shaped patterns of every family
COMMON = {
    "timestamp8601": "timestamp",
    "logsource": "[host][hostname]",
    "program": "[process][name]",
    "pid": "[process][pid]",
    "facility": "[log][syslog][facility][code]",
    "priority": "[log][syslog][priority]",
    "syslog5424_pri": "[log][syslog][priority]",
    "syslog5424_ver": "[system][syslog][version]",
    "syslog5424_ts": "timestamp",
    "syslog5424_host": "[host][hostname]",
    "syslog5424_app": "[process][name]",
    "syslog5424_proc": "[process][pid]",
    "procid": "[process][pid]",
    "syslog5424_msgid": "[event][code]",
    "msgid": "[event][code]",
    "syslog5424_sd": "[system][syslog][structured_data]",
    "syslog5424_msg": "message",
    "pam_module": "[system][auth][pam][module]",
    "pam_caller": "[system][auth][pam][origin]",
    "pam_session_state": "[system][auth][pam][session_state]",
    "username": "[user][name]",
    "pam_by": "[source][user][name]",
    "user": "[user][name]",
    "action": "[system][cron][action]",
    "loglevel": "[log][level]",
    "level": "[log][level]",
}

FAMILIES = {
    "httpd": {
        "clientip": "[source][address]", "ident": "[apache][access][user][identity]",
        "auth": "[user][name]", "verb": "[http][request][method]", "request": "[url][original]",
        "httpversion": "[http][version]", "response": "[http][response][status_code]",
        "bytes": "[http][response][body][bytes]", "referrer": "[http][request][referrer]",
        "agent": "[user_agent][original]", "rawrequest": "[http][request][original]",
        "clientport": "[source][port]", "tid": "[process][thread][id]",
        "module": "[apache][error][module]", "errorcode": "[error][code]",
        "proxy_errorcode": "[apache][error][proxy][error][code]",
        "proxy_message": "[apache][error][proxy][error][message]",
        "connection": "[nginx][error][connection_id]", "forwarder": "[nginx][access][forwarded_for]",
    },
    "java": {
        "class": "[java][log][origin][class][name]", "method": "[log][origin][function]",
        "file": "[log][origin][file][name]", "line": "[log][origin][file][line]",
        "logmessage": "message", "thread": "[java][log][origin][thread][name]",
        "logger": "[log][logger]", "exception": "[error][type]",
        "exception_message": "[error][message]",
    },
    "nagios": {
        "nagios_epoch": "timestamp", "nagios_type": "[nagios][log][type]",
        "nagios_hostname": "[host][hostname]", "nagios_service": "[service][name]",
        "nagios_state": "[nagios][log][status]", "nagios_statetype": "[nagios][log][state_type]",
        "nagios_statelevel": "[nagios][log][state_type]",
        "nagios_statecode": "[nagios][log][attempt]", "nagios_attempt": "[nagios][log][attempt]",
        "nagios_message": "message", "nagios_notifyname": "[user][name]",
        "nagios_contact": "[nagios][log][notification_command]",
        "nagios_comment": "[nagios][log][comment]",
        "nagios_event_handler_name": "[nagios][log][event_handler_name]",
        "nagios_command": "[nagios][log][command]",
        "nagios_check_result": "[nagios][log][check_result]",
        "nagios_start_time": "[nagios][log][start_time]",
        "nagios_end_time": "[nagios][log][end_time]", "nagios_fixed": "[nagios][log][fixed]",
        "nagios_trigger_id": "[nagios][log][trigger_id]",
        "nagios_duration": "[nagios][log][duration]", "author": "[user][name]",
        "comment": "[nagios][log][comment]", "nagios_unknown1": "[nagios][log][period_from]",
        "nagios_unknown2": "[nagios][log][period_to]",
    },
    "bind": {
        "clientip": "[client][ip]", "clientport": "[client][port]",
        "query": "[dns][question][name]", "querytype": "[dns][question][type]",
        "dns": "[server][ip]",
    },
    "redis": {
        "database": "[redis][database][id]", "client": "[client][ip]", "port": "[client][port]",
        "command": "[redis][command][name]", "params": "[redis][command][args]",
        "role": "[redis][log][role]",
    },
    "mongodb": {
        "component": "[mongodb][component]", "severity": "[log][level]",
        "context": "[mongodb][context]", "op": "[mongodb][profile][op]",
        "database": "[mongodb][database]", "collection": "[mongodb][collection]",
        "query": "[mongodb][query][original]", "ntoreturn": "[mongodb][profile][ntoreturn]",
        "ntoskip": "[mongodb][profile][ntoskip]", "nscanned": "[mongodb][profile][nscanned]",
        "nreturned": "[mongodb][profile][nreturned]", "duration": "[mongodb][profile][duration]",
    },
    "squid": {
        "duration": "[squid][request][duration]", "client_address": "[source][ip]",
        "cache_result": "[event][action]", "status_code": "[http][response][status_code]",
        "bytes": "[http][response][bytes]", "request_method": "[http][request][method]",
        "url": "[url][original]", "hierarchy_code": "[squid][hierarchy_code]",
        "server": "[destination][address]", "content_type": "[http][response][mime_type]",
    },
    "haproxy": {
        "syslog_timestamp": "timestamp", "syslog_server": "[host][hostname]",
        "client_ip": "[source][address]", "client_port": "[source][port]",
        "accept_date": "[haproxy][request_date]", "frontend_name": "[haproxy][frontend_name]",
        "backend_name": "[haproxy][backend_name]", "server_name": "[haproxy][server_name]",
        "bind_name": "[haproxy][bind_name]", "error_message": "message",
        "time_request": "[haproxy][http][request][time_wait_ms]",
        "time_queue": "[haproxy][total_waiting_time_ms]",
        "time_backend_connect": "[haproxy][connection_wait_time_ms]",
        "time_backend_response": "[haproxy][http][request][time_wait_without_data_ms]",
        "time_duration": "[haproxy][total_time_ms]",
        "http_status_code": "[http][response][status_code]", "bytes_read": "[source][bytes]",
        "termination_state": "[haproxy][termination_state]",
        "actconn": "[haproxy][connections][active]", "feconn": "[haproxy][connections][frontend]",
        "beconn": "[haproxy][connections][backend]", "srvconn": "[haproxy][connections][server]",
        "retries": "[haproxy][connections][retries]", "srv_queue": "[haproxy][server_queue]",
        "backend_queue": "[haproxy][backend_queue]", "http_verb": "[http][request][method]",
        "http_request": "[url][path]", "http_version": "[http][version]",
        "http_host": "[url][domain]", "http_proto": "[url][scheme]", "http_user": "[url][username]",
        "captured_request_headers": "[haproxy][http][request][captured_headers]",
        "captured_response_headers": "[haproxy][http][response][captured_headers]",
    },
    "junos": {
        "event": "[juniper][srx][tag]", "close-reason": "[juniper][srx][reason]",
        "src-ip": "[source][ip]", "src-port": "[source][port]", "dst-ip": "[destination][ip]",
        "dst-port": "[destination][port]", "service": "[juniper][srx][service_name]",
        "nat-src-ip": "[source][nat][ip]", "nat-src-port": "[source][nat][port]",
        "nat-dst-ip": "[destination][nat][ip]", "nat-dst-port": "[destination][nat][port]",
        "src-nat-rule-name": "[juniper][srx][src_nat_rule_name]",
        "dst-nat-rule-name": "[juniper][srx][dst_nat_rule_name]",
        "protocol-id": "[network][iana_number]", "policy-name": "[rule][name]",
        "from-zone": "[observer][ingress][zone]", "to-zone": "[observer][egress][zone]",
        "session-id": "[juniper][srx][session_id]", "sent": "[source][bytes]",
        "received": "[destination][bytes]", "elapsed-time": "[juniper][srx][elapsed_time]",
    },
    "ruby": {"progname": "[process][name]"},
    "mcollective": {"event_level": "[log][level]"},
    "rails": {
        "verb": "[http][request][method]", "request": "[url][original]",
        "clientip": "[source][address]", "controller": "[rails][controller][class]",
        "action": "[rails][controller][action]", "format": "[rails][request][format]",
        "params": "[rails][request][params]", "response": "[http][response][status_code]",
        "totalms": "[rails][request][duration][total]",
        "viewms": "[rails][request][duration][view]",
        "activerecordms": "[rails][request][duration][active_record]",
    },
}

# ECS types these as numbers
INTEGERS = {"[process][pid]", "[http][response][status_code]", "[http][response][body][bytes]",
            "[source][port]", "[client][port]", "[log][syslog][priority]",
            "[log][syslog][facility][code]", "[system][syslog][version]",
            "[process][thread][id]", "[nagios][log][attempt]", "[redis][database][id]",
            "[mongodb][profile][ntoreturn]", "[mongodb][profile][ntoskip]",
            "[mongodb][profile][nscanned]", "[mongodb][profile][nreturned]",
            "[mongodb][profile][duration]", "[http][response][bytes]", "[source][bytes]",
            "[destination][port]", "[source][nat][port]", "[destination][nat][port]",
            "[destination][bytes]", "[juniper][srx][elapsed_time]"}

_REF = re.compile(r"%\{([A-Za-z0-9_.\-]+):([^:}]+)(?::([A-Za-z]+))?\}")
_NAMED = re.compile(r"\(\?<([A-Za-z_@][^>]*)>")


def rename_captures(text: str, names: dict[str, str]) -> str:
    """The grok expression with its capture names renamed (and ``:int`` where ECS wants one)."""
    def ref(m: re.Match) -> str:
        new = names.get(m.group(2), m.group(2))
        conv = m.group(3) or ("int" if new in INTEGERS and new != m.group(2) else None)
        return "%{" + m.group(1) + ":" + new + (":" + conv if conv else "") + "}"

    def named(m: re.Match) -> str:
        return "(?<" + names.get(m.group(1), m.group(1)) + ">"
    return _NAMED.sub(named, _REF.sub(ref, text))


def family_of(definition: Definition) -> str:
    name = (definition.path or "").rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".grok") else name


@functools.lru_cache(maxsize=1)
def ecs_builtin_definitions() -> dict[str, Definition]:
    out = {}
    for name, d in builtin_definitions().items():
        names = {**COMMON, **FAMILIES.get(family_of(d), {})}
        out[name] = Definition(d.name, rename_captures(d.regex, names), d.path, d.line, True)
    return out
