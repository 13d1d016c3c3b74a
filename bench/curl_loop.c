/* The reference for per-call overhead: N sequential GETs on one reused
 * libcurl easy handle, with the same TLS, HTTP version and headers as the
 * client, and no decoding (the body is received and dropped). The limit of
 * this stack: nothing a Lua client built on libcurl does can be cheaper.
 *
 *   curl_loop URL CA_FILE TOKEN WARMUP N
 *     prints "<wall seconds for the N timed calls> <calls per second>
 *     <CPU seconds of this process for them>";
 *   curl_loop URL CA_FILE TOKEN WARMUP serve
 *     then reads counts from stdin, one a line, makes that many calls for
 *     each and prints "<wall seconds> <CPU seconds>" for them, until EOF or
 *     0. The benchmark interleaves short blocks of these with blocks of its
 *     own calls, so that a machine whose speed drifts (a shared VM) slows
 *     both sides alike. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t sink(char *p, size_t size, size_t n, void *ud) {
  size_t *total = ud;
  (void)p;
  *total += size * n;
  return size * n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int call(CURL *e) {
  long status = 0;
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    fprintf(stderr, "curl_loop: %s\n", curl_easy_strerror(rc));
    return -1;
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    fprintf(stderr, "curl_loop: HTTP %ld\n", status);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  CURL *e;
  struct curl_slist *headers = NULL;
  char auth[512];
  size_t total = 0;
  long warmup, n, i;
  double t0, t, c0, c;
  if (argc != 6) {
    fprintf(stderr, "usage: curl_loop URL CA_FILE TOKEN WARMUP N\n");
    return 2;
  }
  warmup = atol(argv[4]);
  n = strcmp(argv[5], "serve") == 0 ? -1 : atol(argv[5]);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  e = curl_easy_init();
  if (e == NULL) return 1;
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[3]);
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, auth);
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_URL, argv[1]);
  curl_easy_setopt(e, CURLOPT_CAINFO, argv[2]);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "lua-qiwi/0.1.0");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &total);
  for (i = 0; i < warmup; i++)
    if (call(e) != 0) return 1;
  if (n < 0) {
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL && (n = atol(line)) > 0) {
      t0 = now();
      c0 = cpu();
      for (i = 0; i < n; i++)
        if (call(e) != 0) return 1;
      printf("%.6f %.6f\n", now() - t0, cpu() - c0);
      fflush(stdout);
    }
  } else {
    t0 = now();
    c0 = cpu();
    for (i = 0; i < n; i++)
      if (call(e) != 0) return 1;
    t = now() - t0;
    c = cpu() - c0;
    printf("%.6f %.1f %.6f\n", t, (double)n / t, c);
  }
  curl_easy_cleanup(e);
  curl_slist_free_all(headers);
  curl_global_cleanup();
  return 0;
}
