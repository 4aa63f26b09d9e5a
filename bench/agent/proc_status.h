// A field of /proc/self/status in kB (VmRSS:, VmHWM:), -1 when absent: the agent benchmarks' memory
// readings.
#pragma once

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

inline long ProcStatusKb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
  }
  return -1;
}
