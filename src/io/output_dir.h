// An output directory that appears all at once: everything is written into a hidden temporary
// sibling (`.NAME.tmp-PID`), which commit() renames into place. If the work fails, the destructor
// removes the temporary directory; on SIGINT/SIGTERM the interrupt watcher does (core/interrupt.h); a
// temporary left by SIGKILL or a power cut is removed by the next run on the same output, once its
// owner's PID is gone — so no half-written model is ever left at the output path.
#pragma once

#include <string>

namespace quantlab::io {

class AtomicOutputDir {
 public:
  // Refuses (Error kUsage) when `final_path` exists and overwrite is false, or when it is the input.
  AtomicOutputDir(std::string final_path, bool overwrite);
  ~AtomicOutputDir();
  AtomicOutputDir(const AtomicOutputDir&) = delete;
  AtomicOutputDir& operator=(const AtomicOutputDir&) = delete;

  // Where to write the files now.
  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  // Path of `name` inside the temporary directory.
  std::string file(const std::string& name) const;
  // Moves the finished directory into place (replacing an old one when overwrite was given).
  void commit();

 private:
  std::string final_path_;
  std::string temp_path_;
  bool overwrite_;
  bool committed_ = false;
};

// Removes `.NAME.tmp-PID[.old]` siblings of `final_path` whose process no longer exists, with a one-line
// notice on stderr each (a PID reused by another live process keeps its directory: never guess).
void remove_stale_temporaries(const std::string& final_path);

// Writes `text` to `path` through a temporary sibling (`path`.tmp) and a rename, so a failed or
// interrupted write never leaves half a file. Throws Error(kIo) naming the file.
void write_file_atomically(const std::string& path, const std::string& text);

// Refuses (Error kUsage) writing `output` when it is the same directory as `input` or inside it.
void check_output_not_input(const std::string& input, const std::string& output);

}  // namespace quantlab::io
