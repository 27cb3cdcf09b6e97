# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  cluster:
    description:
      - Name under which this PostgreSQL cluster's backups live in the repository.
      - 1-63 characters from letters, digits, V(_), V(.), V(-), starting with a letter or digit.
    type: str
    required: true
  repository:
    description:
      - Where backups are stored. See docs/storage-format.md for the layout.
    type: dict
    required: true
    suboptions:
      type:
        description: V(local) for a directory (local disk, NFS), V(s3) for S3 or any S3-compatible store.
        type: str
        default: local
        choices: [ local, s3 ]
      path:
        description: Absolute path of the repository root, for O(repository.type=local). Created with mode 0700 if missing.
        type: path
      bucket:
        description: Bucket name, for O(repository.type=s3). The bucket must exist; it is never created.
        type: str
      prefix:
        description: Key prefix inside the bucket.
        type: str
        default: ''
      region:
        description: AWS region of the bucket.
        type: str
      endpoint_url:
        description: Endpoint of an S3-compatible store (Cloudflare R2, MinIO, Ceph RGW). Path-style addressing is used.
        type: str
      profile:
        description: Named profile of the AWS shared configuration on the managed host.
        type: str
      access_key:
        description: AWS access key id.
        type: str
      secret_key:
        description: AWS secret access key.
        type: str
      session_token:
        description: AWS session token for temporary credentials.
        type: str
      storage_class:
        description: Storage class of new objects (lifecycle rules move them later).
        type: str
        choices: [ STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, REDUCED_REDUNDANCY ]
      sse:
        description: Server-side encryption of new objects.
        type: str
        choices: [ AES256, 'aws:kms' ]
      sse_kms_key_id:
        description: KMS key for O(repository.sse=aws:kms).
        type: str
      validate_certs:
        description: Verify the endpoint's TLS certificate.
        type: bool
        default: true
      retries:
        description: Attempts per S3 request (botocore standard retry mode, exponential backoff).
        type: int
        default: 5
'''
