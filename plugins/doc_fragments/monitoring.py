# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  notify:
    description:
      - A webhook to alert. The body is a JSON POST whose C(text) field Slack and Mattermost show as is; the
        fields C(event), C(cluster), C(severity) and C(details) are for other receivers.
      - A failed delivery is a warning, never a failed task, and is reported in RV(notifications).
    type: dict
    suboptions:
      url:
        description: The webhook URL. It is a secret (it carries the token) and never appears in results or logs.
        type: str
        required: true
      events:
        description:
          - Which events are sent. V(verify_failed) and V(verify_ok) after a verification, V(rpo_breach) and
            V(rpo_ok) for the RPO status of the newest complete backup, V(size_anomaly) when the newest backup's size
            is far from the ones before it.
        type: list
        elements: str
        choices: [ verify_failed, verify_ok, rpo_breach, rpo_ok, size_anomaly ]
        default: [ verify_failed, rpo_breach, size_anomaly ]
      timeout:
        description: Seconds to wait for the webhook per attempt. Failures other than 4xx are retried.
        type: int
        default: 10
      headers:
        description: Extra HTTP headers, such as an C(Authorization) token. Never logged.
        type: dict
      validate_certs:
        description: Whether to validate the webhook's TLS certificate.
        type: bool
        default: true
  metrics_file:
    description:
      - Write the repository's metrics to this file in the Prometheus text format, atomically, for node_exporter's
        textfile collector (a file name ending in C(.prom) in its directory).
      - The metrics describe the whole repository of the cluster (last backup, last verification, RPO, bytes per
        class), so any module that writes them leaves a complete picture.
    type: path
'''
