//===- Files.h - which paths may be read and replaced -----------*- C++ -*-===//
//
/// \file
/// Inputs must be files: reading a directory through a stream throws
/// (libstdc++'s underflow) where the tools expect an error message.
///
/// Every writer of a named output (artifacts, executables, npz files, ONNX
/// exports, metrics rewrites) writes a temporary file and renames it over
/// the path. A rename replaces whatever is there: as root, `-o /dev/null`
/// would put a regular file in place of the device. So an output may
/// replace only a regular file (symbolic links followed), and never the
/// input it was made from. Header-only and free of MLIR: the compiler and
/// the runtime share it.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_SUPPORT_FILES_H
#define TRAINOPT_SUPPORT_FILES_H

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace trainopt {

/// Whether the input `path` can be read as a file: not a directory.
/// Otherwise `error` says so; a missing file is left to the opener.
inline bool readableAsFile(const std::string &path, std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    error = "'" + path + "' is a directory, not a file";
    return false;
  }
  return true;
}

/// Reads the whole of input `path` into `out`: one allocation of the file's
/// size and large reads (a stream read byte by byte took most of the time
/// of loading a 100 MB artifact), or chunks until the end for what has no
/// size (a pipe). False, with `error` naming the path, for a directory or a
/// file that cannot be opened or read.
inline bool readWholeFile(const std::string &path, std::vector<uint8_t> &out,
                          std::string &error) {
  if (!readableAsFile(path, error))
    return false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open '" + path + "'";
    return false;
  }
  struct stat st;
  size_t size = 0;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
    size = static_cast<size_t>(st.st_size);
  out.clear();
  // The size is a hint: a file may grow or shrink while it is read.
  out.resize(size > 0 ? size : 65536);
  size_t have = 0;
  for (;;) {
    if (have == out.size())
      out.resize(out.size() * 2);
    ssize_t n = ::read(fd, out.data() + have, out.size() - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      error = "cannot read '" + path + "': " + std::strerror(errno);
      ::close(fd);
      out.clear();
      return false;
    }
    if (n == 0)
      break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(have);
  return true;
}

/// Whether the output `path` may be written: it does not exist yet, or it is
/// a regular file. Otherwise `error` names it and what it is.
inline bool mayReplace(const std::string &path, std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode))
    return true; // absent: the write itself reports a bad directory
  const char *what = S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a named pipe"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "not a regular file";
  error =
      "'" + path + "' is " + what + "; an output replaces only a regular file";
  return false;
}

/// Whether `a` and `b` name one existing file (links and relative paths
/// resolved).
inline bool sameFile(const std::string &a, const std::string &b) {
  struct stat x, y;
  return ::stat(a.c_str(), &x) == 0 && ::stat(b.c_str(), &y) == 0 &&
         x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/// Creates directory `path` and any missing parents (`mkdir -p`). False,
/// with `error` naming the part that failed, when one exists and is no
/// directory or cannot be created.
inline bool createDirectories(const std::string &path, std::string &error) {
  for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    std::string part = path.substr(0, end);
    struct stat st;
    if (!part.empty() && ::stat(part.c_str(), &st) != 0 &&
        ::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      error = "cannot create '" + part + "': " + std::strerror(errno);
      return false;
    }
    if (!part.empty() &&
        (::stat(part.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
      error = "'" + part + "' is not a directory";
      return false;
    }
    if (end == std::string::npos)
      return true;
  }
}

} // namespace trainopt

#endif // TRAINOPT_SUPPORT_FILES_H
