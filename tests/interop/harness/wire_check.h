// Wire check: capture IKE traffic (UDP 500/4500) on a namespace's veth with tshark, then let Wireshark's
// IKEv2 dissector judge it: no malformed packets, no expert-info errors. Without keys tshark cannot decrypt
// SK payloads, so this checks IKE_SA_INIT completely and the headers of every later message; with a
// decryption table (Wireshark's ikev2_decryption_table UAT) it checks the encrypted payloads too.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "harness/process.h"
#include "ipfleet/common/status.h"

namespace ipfleet::interop {

bool TsharkAvailable();

class Capture {
 public:
  // Starts `tshark -i IFACE -f "udp port 500 or udp port 4500 or udp dst port 9" -w PCAP` inside `netns`
  // and waits (bounded) until a probe datagram sent to `probe_addr`:9 (discard) shows up in the capture:
  // tshark reports "Capture started" some time before packets are really seen.
  static absl::StatusOr<std::unique_ptr<Capture>> Start(const std::string& netns, const std::string& iface,
                                                        const std::string& probe_addr,
                                                        const std::filesystem::path& pcap);
  ~Capture();
  // Sends an end-marker probe and waits (bounded) until tshark has seen it, so every earlier packet is in the
  // file (dumpcap hands packets to tshark with a delay); then stops tshark with SIGINT.
  absl::Status Stop();
  const std::filesystem::path& pcap() const { return pcap_; }

 private:
  Capture() = default;
  Process process_;
  absl::Status Probe(const std::string& payload);
  std::string netns_, probe_addr_;
  std::filesystem::path pcap_, log_;
  bool stopped_ = false;
};

struct WireReport {
  int ike_packets = 0;                    // frames dissected as ISAKMP
  int malformed = 0;                      // frames with _ws.malformed
  std::vector<std::string> summary;       // one tshark summary line per IKE frame
  std::vector<std::string> expert_errors; // the error section of -z expert
  std::string expert;                     // whole -z expert output
  std::filesystem::path verbose;          // full -V decode written next to the pcap
  bool Clean() const { return malformed == 0 && expert_errors.empty(); }
  std::string ToString() const;
};

// One row of Wireshark's ikev2_decryption_table UAT (hex strings).
struct Ikev2DecryptionRow {
  std::string ispi, rspi, sk_ei, sk_er, encr_alg, sk_ai, sk_ar, integ_alg;
};

// One value of `field` per frame of `pcap` that matches the display filter (e.g. the source address of every
// IKE fragment: filter "isakmp.nextpayload == 53", field "ip.src").
absl::StatusOr<std::vector<std::string>> FrameFields(const std::filesystem::path& pcap, const std::string& filter,
                                                     const std::string& field);

// Decodes `pcap` with tshark (optionally with a decryption table) and collects the verdict.
absl::StatusOr<WireReport> AnalyzeIke(const std::filesystem::path& pcap,
                                      const std::vector<Ikev2DecryptionRow>& decryption = {});

}  // namespace ipfleet::interop
