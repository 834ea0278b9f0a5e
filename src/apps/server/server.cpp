#include "server.h"

#include <httplib.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "routes.h"
#include "server_state.h"

namespace tinyemo::server {

namespace {

void say(const std::string& line) {
  std::fprintf(stderr, "tinyemo serve: %s\n", line.c_str());
  std::fflush(stderr);
}

// The library's messages (model loads, warnings) on standard error.
void log_line(te_log_level level, const char* message, void*) {
  static const char* names[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "tinyemo serve: %s: %s\n", names[std::clamp(static_cast<int>(level), 0, 3)], message);
}

int g_signal_pipe[2] = {-1, -1};

void on_stop_signal(int signal_number) {
  const int saved = errno;
  const char c = static_cast<char>(signal_number);
  (void)!write(g_signal_pipe[1], &c, 1);
  errno = saved;
}

}  // namespace

int run_server(const ServerOptions& options) {
  // SIGINT / SIGTERM write to a pipe that this thread waits on (a handler, not
  // a blocked mask: threads that libraries start before this point, OpenBLAS's
  // for one, would otherwise take the signal's default action and end the
  // process mid-request). A client that hangs up must not kill the process.
  if (pipe(g_signal_pipe) != 0) {
    say("error: cannot create the signal pipe");
    return 1;
  }
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // glibc gives threads their own malloc arenas (up to 8 per core), each
  // keeping what its requests freed: with tens of connection threads the
  // resident memory climbed by half before it levelled off. Two arenas keep it
  // flat across requests (tests/server/server_load_test.cpp measures it).
  mallopt(M_ARENA_MAX, 2);
  // glibc also raises its mmap threshold each time a large block is freed, so
  // request-sized buffers (bodies, decoded images, batches) soon come from the
  // heap and fragment it: over 10,000 classify requests resident memory went
  // 34 -> 49 MB (x1.43), see docs/server.md. A fixed 128 KiB threshold gives
  // such buffers back on free: 27 -> 29 MB (x1.07) in the same run.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  te_log_set(log_line, nullptr, TE_LOG_INFO);

  ServerState state(options);
  httplib::Server http;
  http.set_payload_max_length(static_cast<size_t>(options.max_body_mb) * 1024 * 1024);
  // Responses go out as headers then body: without TCP_NODELAY, Nagle's
  // algorithm holds the body until the client's delayed ACK (~40 ms a request).
  http.set_tcp_nodelay(true);
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(5);
  http.set_read_timeout(10);
  http.set_write_timeout(10);
  const size_t http_threads = options.http_threads > 0
                                  ? static_cast<size_t>(options.http_threads)
                                  : static_cast<size_t>(options.parallel + options.queue + 8);
  http.new_task_queue = [http_threads] { return new httplib::ThreadPool(http_threads); };
  register_routes(http, state);

  int port = options.port;
  if (port == 0) {
    port = http.bind_to_any_port(options.host);
    if (port < 0) port = 0;
  } else if (!http.bind_to_port(options.host, port)) {
    port = 0;
  }
  if (port == 0) {
    say("error: cannot listen on " + options.host + ":" + std::to_string(options.port));
    return 1;
  }
  say("listening on http://" + options.host + ":" + std::to_string(port));
  std::thread listener([&] { http.listen_after_bind(); });

  // Models load while /health answers 503.
  std::mutex mutex;
  std::condition_variable stop_requested;
  std::atomic<bool> load_failed{false};
  std::thread loader([&] {
    if (options.debug_load_delay_ms > 0) {
      std::unique_lock<std::mutex> lock(mutex);
      stop_requested.wait_for(lock, std::chrono::milliseconds(options.debug_load_delay_ms),
                              [&] { return state.stopping.load(); });
      if (state.stopping.load()) return;
    }
    try {
      load_models(state);
      state.ready = true;
      say("ready");
    } catch (const std::exception& e) {
      say(std::string("error: ") + e.what());
      load_failed = true;
      const char c = 0;
      (void)!write(g_signal_pipe[1], &c, 1);  // the waiting thread below stops the server
    }
  });

  char signal_number = 0;
  while (read(g_signal_pipe[0], &signal_number, 1) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    state.stopping = true;
  }
  stop_requested.notify_all();
  if (!load_failed) say(std::string("stopping (") + (signal_number == SIGINT ? "SIGINT" : "SIGTERM") + ")");
  // Stops accepting; returns once the requests in flight are answered.
  http.stop();
  listener.join();
  loader.join();
  say("stopped");
  te_log_set(nullptr, nullptr, TE_LOG_WARN);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  close(g_signal_pipe[0]);
  close(g_signal_pipe[1]);
  return load_failed ? 1 : 0;
}

}  // namespace tinyemo::server
