# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  region:
    description: AWS region of the bucket.
    type: str
  endpoint_url:
    description: Endpoint of an S3-compatible store (MinIO, Ceph RGW, a test server). Path-style addressing is used.
    type: str
  profile:
    description: Named profile of the AWS shared configuration on the host running the module.
    type: str
  access_key:
    description: AWS access key id. Without keys or a profile, boto3's usual chain applies (environment, instance role).
    type: str
  secret_key:
    description: AWS secret access key.
    type: str
  session_token:
    description: AWS session token for temporary credentials.
    type: str
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  retries:
    description: Attempts per AWS request (botocore standard retry mode, exponential backoff with jitter).
    type: int
    default: 5
requirements:
  - boto3 >= 1.36 (botocore >= 1.36)
'''
