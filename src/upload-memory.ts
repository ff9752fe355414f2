/**
 * Upload bodies reach JavaScript as one fresh 64 KiB Buffer per socket read: Node's HTTP parser
 * copies each read into new memory (`Buffer::Copy` in node_http_parser.cc `on_body`). V8 frees
 * those Buffers only when a scavenge finds them dead, and it forces one when the young Buffers'
 * memory reaches 32 MiB (twice its default semi-space, `Heap::AllocateExternalBackingStore`). So an
 * upload churns through ~32 MiB batches of 64 KiB blocks from glibc's main heap. Each batch ends at
 * the top of the heap; when it is freed, glibc hands the top back to the kernel (`brk` shrink past
 * `M_TRIM_THRESHOLD`: 128 KiB at first, raised by glibc as large blocks come and go), and the next
 * batch faults the same pages in again, zeroed by the kernel: a page fault for every 4 KiB of
 * the upload (bench/runs/2026-11-30-issue-13.md, "S3, third pass"). Whether it happens depends on what
 * else lies at the top of the heap, so it comes and goes from run to run and process to process.
 *
 * The cure here keeps the batch below a live block: once, after start-up, 30 MiB of 64 KiB blocks
 * are taken from the top of the heap, one more block (the fence) is taken above them and kept for
 * the life of the process, and the 30 MiB are let go. The next scavenge frees them; glibc merges them
 * into one free region under the fence, which it cannot trim, and serves upload chunks from it: after
 * the first upload the region stays resident (about what each upload added at its peak anyway) and
 * uploads no longer fault or call `brk`. Nothing is touched until used (the blocks are
 * uninitialised), so it costs no memory before the first upload. Elsewhere (musl, other allocators)
 * the blocks are allocated and freed like any others and the fence is one idle 64 KiB block.
 */

/**
 * Bytes of the region under the fence: about V8's 32 MiB batch, and below it, so that taking the
 * blocks does not itself set off scavenges that would keep them alive (and old) until a full GC.
 */
export const UPLOAD_RESERVE_BYTES = 30 * 1024 * 1024
/** One socket read's worth, as the HTTP parser allocates: below glibc's 128 KiB mmap threshold, so from the heap. */
const BLOCK_BYTES = 64 * 1024

let fence: Buffer | undefined

/**
 * Sets the free region and its fence up once per process (later calls do nothing). Call it after
 * start-up, when the heap holds what the process keeps; the blocks are freed by the next scavenge.
 * Synchronous, under a millisecond; raises nothing.
 */
export function reserveUploadChunkSpace (): void {
  if (fence !== undefined) return
  const blocks: Buffer[] = []
  for (let taken = 0; taken < UPLOAD_RESERVE_BYTES; taken += BLOCK_BYTES) blocks.push(Buffer.allocUnsafeSlow(BLOCK_BYTES))
  // Taken while the blocks are live, so it lies above them: the block that keeps them from being trimmed.
  fence = Buffer.allocUnsafeSlow(BLOCK_BYTES)
  blocks.length = 0
}
