/* A stand-in for libnccl.so.2 with NCCL's C ABI (the calls caffe.gpu.nccl binds), so the NCCL
 * engine and Caffe's multiprocessing pattern run on a machine without GPUs, on the GPU emulator
 * (tests/gpu/gpu_emulator.py), whose "device pointers" are host addresses.
 *
 * Ranks are processes on one host. ncclGetUniqueId names a POSIX shared-memory segment and fills
 * the rest of the 128 bytes with a fixed pattern that has NUL bytes in it; ncclCommInitRank
 * refuses an id whose pattern did not survive (a binding that cut the id at a NUL, or passed a
 * pointer instead of the struct). Collectives copy each rank's data into its slot of the segment
 * between process-shared barriers and sum the slots in rank order.
 *
 * Test hooks: fakeNcclCalls(name) counts the calls of one kind; fakeNcclLastStream() is the
 * stream the last collective was given.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define ID_BYTES 128
#define NAME_BYTES 48
#define SLOT_BYTES (1 << 20)

typedef struct { char internal[ID_BYTES]; } ncclUniqueId;
typedef struct {
  pthread_barrier_t barrier;
  volatile int ready;
} Header;
typedef struct {
  Header* header;
  char* slots;
  size_t bytes;
  int rank, nranks;
} Comm;

static long calls_allreduce, calls_bcast, calls_init;
static void* last_stream = (void*)-1;

static unsigned char pattern(int i) { return i % 8 == 0 ? 0 : (unsigned char)((i * 37) & 0xff); }

int ncclGetVersion(int* version) { *version = 99999; return 0; }

const char* ncclGetErrorString(int result) {
  switch (result) {
    case 0: return "no error";
    case 2: return "unhandled system error (fake NCCL)";
    case 4: return "invalid argument (fake NCCL)";
    default: return "unknown result (fake NCCL)";
  }
}

int ncclGetUniqueId(ncclUniqueId* id) {
  static int serial = 0;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  memset(id->internal, 0, ID_BYTES);
  snprintf(id->internal, NAME_BYTES, "/fakenccl-%d-%ld-%d", (int)getpid(), (long)now.tv_nsec,
           serial++);
  for (int i = NAME_BYTES; i < ID_BYTES; ++i) id->internal[i] = (char)pattern(i);
  return 0;
}

static int barrier(Comm* c) {
  int r = pthread_barrier_wait(&c->header->barrier);
  return (r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD) ? 0 : 2;
}

int ncclCommInitRank(Comm** out, int nranks, ncclUniqueId id, int rank) {
  for (int i = NAME_BYTES; i < ID_BYTES; ++i)
    if ((unsigned char)id.internal[i] != pattern(i)) return 4;
  if (nranks < 1 || rank < 0 || rank >= nranks) return 4;
  ++calls_init;
  char name[NAME_BYTES];
  memcpy(name, id.internal, NAME_BYTES);
  name[NAME_BYTES - 1] = 0;
  size_t bytes = sizeof(Header) + (size_t)nranks * SLOT_BYTES;
  int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) return 2;
  void* base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) return 2;
  Comm* c = (Comm*)calloc(1, sizeof(Comm));
  c->header = (Header*)base;
  c->slots = (char*)base + sizeof(Header);
  c->bytes = bytes;
  c->rank = rank;
  c->nranks = nranks;
  if (rank == 0) {
    pthread_barrierattr_t attr;
    pthread_barrierattr_init(&attr);
    pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&c->header->barrier, &attr, (unsigned)nranks);
    __atomic_store_n(&c->header->ready, 1, __ATOMIC_RELEASE);
  } else {
    struct timespec pause = {0, 1000000};
    for (int waited = 0; !__atomic_load_n(&c->header->ready, __ATOMIC_ACQUIRE); ++waited) {
      if (waited > 60000) return 2;  /* a minute without rank 0 */
      nanosleep(&pause, NULL);
    }
  }
  if (barrier(c) != 0) return 2;
  if (rank == 0) shm_unlink(name);  /* everyone has it mapped */
  *out = c;
  return 0;
}

int ncclCommDestroy(Comm* c) {
  munmap(c->header, c->bytes);
  free(c);
  return 0;
}

static size_t element_size(int type) {
  switch (type) {
    case 1: return 1;  /* ncclUint8 */
    case 2: return 4;  /* ncclInt32 */
    case 7: return 4;  /* ncclFloat32 */
    case 8: return 8;  /* ncclFloat64 */
    default: return 0;
  }
}

static void add(int type, char* out, const char* in, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    switch (type) {
      case 1: ((uint8_t*)out)[i] += ((const uint8_t*)in)[i]; break;
      case 2: ((int32_t*)out)[i] += ((const int32_t*)in)[i]; break;
      case 7: ((float*)out)[i] += ((const float*)in)[i]; break;
      case 8: ((double*)out)[i] += ((const double*)in)[i]; break;
    }
  }
}

int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, Comm* c,
                  void* stream) {
  size_t size = element_size(type);
  if (!size || op != 0) return 4;  /* ncclSum only */
  ++calls_allreduce;
  last_stream = stream;
  size_t per = SLOT_BYTES / size;
  for (size_t start = 0; start < count || (start == 0 && count == 0); start += per) {
    size_t n = count - start < per ? count - start : per;
    memcpy(c->slots + (size_t)c->rank * SLOT_BYTES, (const char*)send + start * size, n * size);
    if (barrier(c)) return 2;
    char* out = (char*)recv + start * size;
    memcpy(out, c->slots, n * size);
    for (int r = 1; r < c->nranks; ++r) add(type, out, c->slots + (size_t)r * SLOT_BYTES, n);
    if (barrier(c)) return 2;
    if (count == 0) break;
  }
  return 0;
}

int ncclBcast(void* buff, size_t count, int type, int root, Comm* c, void* stream) {
  size_t size = element_size(type);
  if (!size || root < 0 || root >= c->nranks) return 4;
  ++calls_bcast;
  last_stream = stream;
  size_t per = SLOT_BYTES / size;
  for (size_t start = 0; start < count; start += per) {
    size_t n = count - start < per ? count - start : per;
    if (c->rank == root) memcpy(c->slots, (char*)buff + start * size, n * size);
    if (barrier(c)) return 2;
    if (c->rank != root) memcpy((char*)buff + start * size, c->slots, n * size);
    if (barrier(c)) return 2;
  }
  return 0;
}

long fakeNcclCalls(const char* name) {
  if (!strcmp(name, "allreduce")) return calls_allreduce;
  if (!strcmp(name, "bcast")) return calls_bcast;
  if (!strcmp(name, "init")) return calls_init;
  return -1;
}

void* fakeNcclLastStream(void) { return last_stream; }
