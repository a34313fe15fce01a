"""ECS mode (``ecs_compatibility = "v1"`` on a type): the same patterns, captured under the
Elastic Common Schema names Logstash 8's ECS pattern set uses (``[source][address]``,
``[process][pid]``, ...), stored nested.

The ECS set is derived from the classic one: each capture of a definition is renamed by the map of
its definition (``DEFINITIONS``, where one name means different things in one file), then of
its family (the pattern file it lives in, e.g. ``httpd``), then by the map shared by all
families; a capture no map names keeps its classic name. Values ECS types as numbers get
``:int`` (only ``%{NAME:capture}`` references: a ``(?<name>...)`` group may hold ``-``).
A type's own expressions are renamed with the shared map.

The mapping renames what the classic patterns capture; where Logstash's ECS set captures a
part the classic one leaves unnamed (bacula's volume path and byte counts, exim's date parts),
that part stays uncaptured here too. Families Logstash has no ECS patterns for (mail, sshd)
get ECS-style names: ECS's own fields where one fits (``[email][local_id]`` for the queue id,
``[email][from][address]``, ``[source][ip]``, ``[user][name]``...), the rest under ``[mail]`` or
``[system][auth][ssh]`` (Filebeat's names for sshd); docs/ecs-mail.md lists them.

"""

from __future__ import annotations

import functools
import re

from logpipe.indexer.grok.definitions import Definition, builtin_definitions

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

MAIL = {
    "qid": "[email][local_id]", "from": "[email][from][address]",
    "to": "[email][to][address]", "msgid": "[email][message_id]",
    "relay": "[mail][relay][hostname]", "relayip": "[mail][relay][ip]",
    "relayport": "[mail][relay][port]", "stat": "[mail][status]",
    "statusMsg": "[mail][status_message]", "reject": "[mail][reject]", "dsn": "[mail][dsn]",
    "delay": "[mail][delay]", "xdelay": "[mail][xdelay]", "delays": "[mail][delays]",
    "mailer": "[mail][mailer]", "pri": "[mail][priority]", "ctladdr": "[mail][ctladdr]",
    "size": "[mail][size]", "class": "[mail][class]", "nrcpts": "[mail][nrcpts]",
    "orig_to": "[mail][orig_to]", "proto": "[network][protocol]", "daemon": "[mail][daemon]",
    "bodytype": "[mail][bodytype]", "ruleset": "[mail][ruleset]", "arg1": "[mail][arg1]",
    "arg2": "[mail][arg2]", "uid": "[user][id]", "milter": "[mail][milter][name]",
    "milterAction": "[mail][milter][action]", "milterMsg": "[mail][milter][message]",
    "unknownUser": "[mail][unknown_user]", "timeoutHost": "[source][domain]",
    "sendmailMsg": "[mail][text]", "postfixMsg": "[mail][text]", "dovecotMsg": "[mail][text]",
    "mailScannerMsg": "[mail][text]", "starttls": "[mail][tls][direction]",
    "version": "[tls][version]", "verify": "[mail][tls][verify]", "cipher": "[tls][cipher]",
    "bits": "[mail][tls][bits]", "host": "[source][domain]", "ip": "[source][ip]",
    "mech": "[mail][auth][mechanism]", "authMsg": "[mail][auth][message]",
    "command": "[mail][smtp][command]", "count": "[mail][smtp][count]",
    "client": "[source][domain]", "clientip": "[source][ip]", "clientport": "[source][port]",
    "action": "[event][action]", "reason": "[event][reason]", "helo": "[mail][helo]",
    "service": "[service][name]", "method": "[mail][auth][method]", "rip": "[source][ip]",
    "lip": "[destination][ip]", "mpid": "[mail][mpid]", "tls": "[mail][tls][protocol]",
    "session": "[mail][session]", "status": "[mail][status]", "in": "[mail][bytes_in]",
    "out": "[mail][bytes_out]", "authDriver": "[mail][auth][driver]",
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
    "aws": {
        # S3 server access log (S3_ACCESS_LOG overrides clientip and bytes below)
        "owner": "[aws][s3access][bucket_owner]", "bucket": "[aws][s3access][bucket]",
        "requester": "[client][user][id]", "request_id": "[aws][s3access][request_id]",
        "operation": "[aws][s3access][operation]", "key": "[aws][s3access][key]",
        "response": "[http][response][status_code]", "error_code": "[aws][s3access][error_code]",
        "object_size": "[aws][s3access][object_size]",
        "request_time_ms": "[aws][s3access][total_time]",
        "turnaround_time_ms": "[aws][s3access][turn_around_time]",
        "referrer": "[http][request][referrer]", "agent": "[user_agent][original]",
        "version_id": "[aws][s3access][version_id]",
        "verb": "[http][request][method]", "request": "[url][original]",
        "httpversion": "[http][version]", "rawrequest": "[http][request][original]",
        # Classic Load Balancer
        "proto": "[url][scheme]", "urihost": "[url][domain]", "path": "[url][path]",
        "params": "[url][query]", "elb": "[aws][elb][name]", "clientip": "[source][ip]",
        "clientport": "[source][port]", "backendip": "[aws][elb][backend][ip]",
        "backendport": "[aws][elb][backend][port]",
        "request_processing_time": "[aws][elb][request_processing_time][sec]",
        "backend_processing_time": "[aws][elb][backend_processing_time][sec]",
        "response_processing_time": "[aws][elb][response_processing_time][sec]",
        "backend_response": "[aws][elb][backend][http][response][status_code]",
        "received_bytes": "[http][request][body][bytes]", "bytes": "[http][response][body][bytes]",
        # CloudFront
        "x_edge_location": "[aws][cloudfront][x_edge_location]", "sc_bytes": "[destination][bytes]",
        "cs_method": "[http][request][method]", "cs_host": "[url][domain]",
        "cs_uri_stem": "[url][path]", "sc_status": "[http][response][status_code]",
        "cs_uri_query": "[url][query]", "cookies": "[aws][cloudfront][http][request][cookie]",
        "x_edge_result_type": "[aws][cloudfront][x_edge_result_type]",
        "x_edge_request_id": "[aws][cloudfront][x_edge_request_id]",
        "x_host_header": "[aws][cloudfront][http][request][host]",
        "cs_protocol": "[network][protocol]", "cs_bytes": "[source][bytes]",
        "time_taken": "[aws][cloudfront][time_taken]", "x_forwarded_for": "[network][forwarded_ip]",
        "ssl_protocol": "[aws][cloudfront][ssl_protocol]", "ssl_cipher": "[tls][cipher]",
        "x_edge_response_result_type": "[aws][cloudfront][x_edge_response_result_type]",
    },
    "bacula": {
        "bts": "timestamp", "hostname": "[host][hostname]", "jobid": "[bacula][job][id]",
        "device": "[bacula][volume][device]", "volume": "[bacula][volume][name]",
        "berror": "[error][message]", "client": "[bacula][client][name]",
        "job": "[bacula][job][name]", "elapsed": "[bacula][job][elapsed_time]",
        "runjob": "[bacula][job][client_run_before_command]", "duplicate": "[bacula][job][id]",
    },
    "bro": {
        "ts": "timestamp", "uid": "[zeek][session_id]", "orig_h": "[source][ip]",
        "orig_p": "[source][port]", "resp_h": "[destination][ip]", "resp_p": "[destination][port]",
        # http.log
        "trans_depth": "[zeek][http][trans_depth]", "method": "[http][request][method]",
        "domain": "[url][domain]", "uri": "[url][original]",
        "referrer": "[http][request][referrer]", "user_agent": "[user_agent][original]",
        "request_body_len": "[http][request][body][bytes]",
        "response_body_len": "[http][response][body][bytes]",
        "status_code": "[http][response][status_code]", "status_msg": "[zeek][http][status_msg]",
        "info_code": "[zeek][http][info_code]", "info_msg": "[zeek][http][info_msg]",
        "filename": "[zeek][http][filename]", "bro_tags": "[zeek][http][tags]",
        "username": "[url][username]", "password": "[url][password]",
        "proxied": "[zeek][http][proxied]", "orig_fuids": "[zeek][http][orig_fuids]",
        "orig_mime_types": "[zeek][http][orig_mime_types]",
        "resp_fuids": "[zeek][http][resp_fuids]", "resp_mime_types": "[zeek][http][resp_mime_types]",
        # dns.log
        "proto": "[network][transport]", "trans_id": "[dns][id]",
        "query": "[dns][question][name]", "qclass": "[zeek][dns][qclass]",
        "qclass_name": "[zeek][dns][qclass_name]", "qtype": "[zeek][dns][qtype]",
        "qtype_name": "[dns][question][type]", "rcode": "[zeek][dns][rcode]",
        "rcode_name": "[dns][response_code]", "AA": "[zeek][dns][AA]", "TC": "[zeek][dns][TC]",
        "RD": "[zeek][dns][RD]", "RA": "[zeek][dns][RA]", "Z": "[zeek][dns][Z]",
        "answers": "[zeek][dns][answers]", "TTLs": "[zeek][dns][TTLs]",
        "rejected": "[zeek][dns][rejected]",
        # conn.log
        "service": "[network][protocol]", "duration": "[zeek][connection][duration]",
        "orig_bytes": "[zeek][connection][orig_bytes]",
        "resp_bytes": "[zeek][connection][resp_bytes]", "conn_state": "[zeek][connection][state]",
        "local_orig": "[zeek][connection][local_orig]",
        "local_resp": "[zeek][connection][local_resp]",
        "missed_bytes": "[zeek][connection][missed_bytes]",
        "history": "[zeek][connection][history]", "orig_pkts": "[source][packets]",
        "orig_ip_bytes": "[source][bytes]", "resp_pkts": "[destination][packets]",
        "resp_ip_bytes": "[destination][bytes]",
        "tunnel_parents": "[zeek][connection][tunnel_parents]",
        "oric_cc": "[zeek][connection][orig_cc]", "resp_cc": "[zeek][connection][resp_cc]",
        "sensorname": "[zeek][connection][sensorname]",
    },
    "exim": {
        "exim_msgid": "[exim][log][message][id]", "exim_flags": "[exim][log][flags]",
        "exim_status": "[exim][log][status]", "exim_sender_email": "[exim][log][sender][email]",
        "remote_hostname": "[client][address]", "remote_heloname": "[exim][log][remote_address]",
        "remote_host": "[client][ip]", "remote_port": "[client][port]",
        "exim_interface": "[exim][log][host][ip]", "exim_interface_port": "[exim][log][host][port]",
        "protocol": "[network][protocol]", "exim_msg_size": "[exim][log][message][size]",
        "exim_header_id": "[exim][log][header_id]", "exim_subject": "[exim][log][message][subject]",
        "exim_recipient_email": "[exim][log][recipient][email]",
    },
    "firewalls": {
        # Cisco ASA (NETSCREENSESSIONLOG and a few messages override below)
        "syslog_pri": "[log][syslog][priority]", "sysloghost": "[host][hostname]",
        "ciscotag": "[cisco][asa][tag]", "switch_reason": "[event][reason]",
        "interface_name": "[network][interface][name]",
        "direction": "[cisco][asa][network][direction]",
        "protocol": "[cisco][asa][network][transport]", "action": "[cisco][asa][outcome]",
        "src_ip": "[source][ip]", "src_port": "[source][port]", "dst_ip": "[destination][ip]",
        "dst_port": "[destination][port]", "tcp_flags": "[cisco][asa][tcp_flags]",
        "interface": "[observer][egress][interface][name]",
        "src_fwuser": "[source][user][name]", "dst_fwuser": "[destination][user][name]",
        "fwuser": "[destination][user][name]", "reason": "[event][reason]",
        "src_interface": "[observer][ingress][interface][name]",
        "dst_interface": "[observer][egress][interface][name]",
        "icmp_type": "[cisco][asa][icmp_type]", "icmp_code": "[cisco][asa][icmp_code]",
        "policy_id": "[cisco][asa][rule_name]",
        # Logstash keeps the ACL hash codes in [@metadata] (never stored): stored here
        "hashcode1": "[cisco][asa][hashcode1]", "hashcode2": "[cisco][asa][hashcode2]",
        "hit_count": "[cisco][asa][hit_count]", "interval": "[cisco][asa][interval]",
        "dst_url": "[url][original]", "connection_count": "[cisco][asa][connections][in_use]",
        "connection_count_max": "[cisco][asa][connections][most_used]",
        "connection_id": "[cisco][asa][connection_id]", "src_mapped_ip": "[source][nat][ip]",
        "src_mapped_port": "[source][nat][port]", "dst_mapped_ip": "[destination][nat][ip]",
        "dst_mapped_port": "[destination][nat][port]", "duration": "[cisco][asa][duration]",
        "bytes": "[network][bytes]", "icmp_seq_num": "[cisco][asa][icmp_seq]",
        "src_xlated_ip": "[source][nat][ip]", "icmp_code_xlated": "[cisco][asa][icmp_type]",
        "xlate_type": "[cisco][asa][xlate_type]",
        "err_protocol": "[cisco][asa][network][transport]",
        "err_src_interface": "[observer][ingress][interface][name]",
        "err_src_ip": "[source][ip]", "err_src_fwuser": "[source][user][name]",
        "err_dst_interface": "[observer][egress][interface][name]",
        "err_dst_ip": "[destination][ip]", "err_dst_fwuser": "[destination][user][name]",
        "err_icmp_type": "[cisco][asa][icmp_type]", "err_icmp_code": "[cisco][asa][icmp_code]",
        "orig_src_ip": "[cisco][asa][original_ip_payload][source][ip]",
        "orig_src_port": "[cisco][asa][original_ip_payload][source][port]",
        "orig_src_fwuser": "[cisco][asa][original_ip_payload][source][user][name]",
        "orig_dst_ip": "[cisco][asa][original_ip_payload][destination][ip]",
        "orig_dst_port": "[cisco][asa][original_ip_payload][destination][port]",
        "orig_dst_fwuser": "[cisco][asa][original_ip_payload][destination][user][name]",
        "resource_name": "[cisco][asa][resource][name]",
        "resource_limit": "[cisco][asa][resource][limit]",
        "orig_protocol": "[cisco][asa][network][transport]", "spi": "[cisco][asa][ipsec][spi]",
        "seq_num": "[cisco][asa][ipsec][seq_num]", "tunnel_type": "[cisco][asa][ipsec][tunnel_type]",
        "group": "[cisco][asa][source][group]", "is_remote_natted": "[cisco][asa][remote_nat]",
        "is_local_natted": "[cisco][asa][local_nat]", "drop_type": "[cisco][asa][burst][object]",
        "drop_rate_id": "[cisco][asa][burst][id]",
        "drop_rate_current_burst": "[cisco][asa][burst][current_rate]",
        "drop_rate_max_burst": "[cisco][asa][burst][configured_rate]",
        "drop_rate_current_avg": "[cisco][asa][burst][avg_rate]",
        "drop_rate_max_avg": "[cisco][asa][burst][configured_avg_rate]",
        "drop_total_count": "[cisco][asa][burst][cumulative_count]",
        # Shorewall, SuSEfirewall2 (netfilter LOG)
        "nf_host": "[observer][hostname]", "nf_action1": "[shorewall][firewall][type]",
        "nf_action2": "[shorewall][firewall][action]", "nf_action": "[suse][firewall][action]",
        "nf_in_interface": "[observer][ingress][interface][name]",
        "nf_out_interface": "[observer][egress][interface][name]",
        "nf_dst_mac": "[destination][mac]", "nf_src_mac": "[source][mac]",
        "nf_src_ip": "[source][ip]", "nf_dst_ip": "[destination][ip]",
        "nf_len": "[iptables][length]", "nf_tos": "[iptables][tos]",
        "nf_prec": "[iptables][precedence_bits]", "nf_ttl": "[iptables][ttl]",
        "nf_id": "[iptables][id]", "nf_protocol": "[network][transport]",
        "nf_src_port": "[source][port]", "nf_dst_port": "[destination][port]",
    },
    "postgresql": {
        "user_id": "[user][name]", "connection_id": "[postgresql][log][connection_id]",
        "timezone": "[event][timezone]", "database": "[postgresql][log][database]",
        "line_num": "[postgresql][log][session_line_number]",
    },
    # no ECS patterns in Logstash for these two: ECS fields where one fits, Filebeat's names for
    # sshd, the rest under [mail] (docs/ecs-mail.md)
    "sshd": {
        "event": "[system][auth][ssh][event]", "auth_method": "[system][auth][ssh][method]",
        "src_ip": "[source][ip]", "src_port": "[source][port]", "src_host": "[source][domain]",
        "protocol": "[system][auth][ssh][protocol]", "key_info": "[system][auth][ssh][signature]",
        "invalid": "[system][auth][ssh][invalid_user]",
        "disconnect_code": "[system][auth][ssh][disconnect][code]",
        "disconnect_reason": "[system][auth][ssh][disconnect][reason]",
        "reason": "[event][reason]", "via": "[system][auth][ssh][via]",
        "pam_type": "[system][auth][pam][type]", "pam_message": "[system][auth][pam][message]",
    },
    "mail": MAIL,
}

# a name that means one thing in most of a family's definitions and another in these
DEFINITIONS = {
    # the port of a URI's host (ELB's request URL)
    "URIHOST": {"port": "[url][port]"},
    "BIND9_CLIENTQUERY": {"query": "[bind][log][question][name]"},
    "S3_ACCESS_LOG": {"clientip": "[client][ip]", "bytes": "[aws][s3access][bytes_sent]"},
    "BRO_FILES": {name: name for name in (
        "uid", "source", "depth", "analyzers", "mime_type", "filename", "duration", "local_orig",
        "is_orig", "seen_bytes", "total_bytes", "missing_bytes", "overflow_bytes", "timedout",
        "parent_fuid", "md5", "sha1", "sha256", "extracted")},
    "NETSCREENSESSIONLOG": {
        "date": "timestamp", "device": "[observer][hostname]",
        "device_id": "[netscreen][device_id]", "start_time": "[netscreen][session][start_time]",
        "duration": "[netscreen][session][duration]", "policy_id": "[netscreen][policy_id]",
        "service": "[netscreen][service]", "proto": "[netscreen][protocol_number]",
        "src_zone": "[observer][ingress][zone]", "dst_zone": "[observer][egress][zone]",
        "action": "[event][action]", "sent": "[source][bytes]", "rcvd": "[destination][bytes]",
        "src_ip": "[source][address]", "dst_ip": "[destination][address]",
        "src_xlated_ip": "[source][nat][ip]", "src_xlated_port": "[source][nat][port]",
        "dst_xlated_ip": "[destination][nat][ip]", "dst_xlated_port": "[destination][nat][port]",
        "session_id": "[netscreen][session][id]", "reason": "[netscreen][session][reason]"},
    "CISCOFW302020_302021": {"user": "[source][user][name]"},
    "CISCOFW305011": {"src_xlated_interface": "[observer][egress][interface][name]",
                      "src_xlated_ip": "[destination][ip]", "src_xlated_port": "[destination][port]"},
    "CISCOFW402117": {"protocol": "[cisco][asa][network][type]"},
    "CISCOFW402119": {"protocol": "[cisco][asa][network][type]",
                      "orig_protocol": "[cisco][asa][ipsec][protocol]",
                      "user": "[source][user][name]"},
    "CISCOFW602303_602304": {"protocol": "[cisco][asa][network][type]",
                             "user": "[source][user][name]"},
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
            "[destination][bytes]", "[juniper][srx][elapsed_time]",
            "[aws][s3access][bytes_sent]", "[aws][s3access][object_size]",
            "[aws][s3access][total_time]", "[aws][s3access][turn_around_time]",
            "[aws][elb][backend][port]", "[aws][elb][backend][http][response][status_code]",
            "[http][request][body][bytes]", "[bacula][job][id]", "[zeek][http][trans_depth]",
            "[dns][id]", "[exim][log][host][port]", "[exim][log][message][size]",
            "[netscreen][session][duration]", "[netscreen][protocol_number]",
            "[cisco][asa][icmp_type]", "[cisco][asa][icmp_code]", "[cisco][asa][hit_count]",
            "[cisco][asa][connections][in_use]", "[cisco][asa][connections][most_used]",
            "[network][bytes]", "[cisco][asa][icmp_seq]", "[cisco][asa][resource][limit]",
            "[cisco][asa][burst][current_rate]", "[cisco][asa][burst][configured_rate]",
            "[cisco][asa][burst][avg_rate]", "[cisco][asa][burst][configured_avg_rate]",
            "[cisco][asa][burst][cumulative_count]",
            "[cisco][asa][original_ip_payload][source][port]",
            "[cisco][asa][original_ip_payload][destination][port]",
            "[iptables][length]", "[iptables][ttl]", "[mail][relay][port]", "[mail][size]",
            "[mail][nrcpts]", "[url][port]"}

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
        names = {**COMMON, **FAMILIES.get(family_of(d), {}), **DEFINITIONS.get(name, {})}
        out[name] = Definition(d.name, rename_captures(d.regex, names), d.path, d.line, True)
    return out
