import type { MediaType } from './asset.js';

export type UploadProtocol = 'multipart' | 'tus';
/** `completing` is held by exactly one request; it ends `completed` (with an asset) or back `open`. */
export type UploadState = 'open' | 'completing' | 'completed' | 'aborted';

/** A client's upload in progress (S3-style multipart or tus), before it becomes an asset version. */
export interface UploadSession {
  id: string;
  protocol: UploadProtocol;
  projectId: string;
  /** The client's stable id of the media: a second upload with it becomes a new version. */
  mediaId: string | null;
  filename: string;
  /** As declared by the client; the stored type is decided from the bytes. */
  declaredType: string | null;
  /** Declared total size, when known. */
  size: number | null;
  /** Blob key the bytes go to (the multipart upload's target). */
  key: string;
  /** The blob store's multipart upload id, for S3-style uploads. */
  storeUploadId: string | null;
  /** A checksum the client declared for the whole file (`sha256:<hex>`), verified at completion. */
  checksum: string | null;
  state: UploadState;
  assetId: string | null;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
}

export type { MediaType };
