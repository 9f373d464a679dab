// Packet-level flow driver for Phantora's ns-3 backend, JIT-compiled by cppyy (see runner.py).
//
// Everything that happens per packet stays in C++: Python only describes the fabric and the
// flows, calls Run(), and reads back start/finish times. A flow is one or more TCP sub-flows,
// each pinned to one spine by its destination *address* (every host owns one alias per spine
// and the leaves route alias s to spine s), so a sub-flow never changes path. The sub-flows of
// a flow pull fixed-size chunks from the flow's shared byte pool when their send buffer runs
// low, which is how multipath (UCCL-like spraying) balances load: a congested path drains its
// buffer slowly and so claims fewer chunks. A flow finishes when its receiver has every byte,
// and then releases the flows that depend on it (collective steps).
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace phantora_ns3
{

// ns-3's TcpDctcp answers an ECN echo with ssthresh = cwnd = (1 - alpha/2) * cwnd and no
// floor, so a connection already at one segment drops below one. With nothing in flight the
// sender's silly-window check then refuses to send a partial segment while more data waits,
// and no ACK ever comes to open the window: the queue pair stalls for good, with no drop and
// no RTO (nothing is outstanding). Linux keeps DCTCP's window at >= 2 segments; this class
// keeps it at >= MinCwndSegments (default 1, the smallest change that cannot stall).
class FlooredDctcp : public ns3::TcpDctcp
{
  public:
    static ns3::TypeId GetTypeId()
    {
        static ns3::TypeId tid =
            ns3::TypeId("phantora_ns3::FlooredDctcp")
                .SetParent<ns3::TcpDctcp>()
                .SetGroupName("Internet")
                .AddConstructor<FlooredDctcp>()
                .AddAttribute("MinCwndSegments",
                              "Smallest slow-start threshold (hence window after an ECN cut), in segments",
                              ns3::UintegerValue(1),
                              ns3::MakeUintegerAccessor(&FlooredDctcp::m_minCwndSegments),
                              ns3::MakeUintegerChecker<uint32_t>(1));
        return tid;
    }

    std::string GetName() const override { return "FlooredDctcp"; }

    uint32_t GetSsThresh(ns3::Ptr<const ns3::TcpSocketState> tcb, uint32_t bytesInFlight) override
    {
        return std::max(ns3::TcpDctcp::GetSsThresh(tcb, bytesInFlight), m_minCwndSegments * tcb->m_segmentSize);
    }

    ns3::Ptr<ns3::TcpCongestionOps> Fork() override { return ns3::CopyObject<FlooredDctcp>(this); }

  private:
    uint32_t m_minCwndSegments = 1;
};

// One TCP connection = one RDMA queue pair: (src, dst, qp, spine). Connections persist across
// flows (NCCL connects its QPs once, at communicator set-up), so a flow pays no handshake and
// no slow start; messages on one connection are delivered in order.
struct Connection
{
    uint32_t src;
    uint32_t dst;
    uint32_t spine;
    uint16_t port;
    ns3::Ptr<ns3::Socket> tx;
    bool connected = false;
    bool pumping = false; // Send() can call back into Pump(); the outer loop keeps going
    std::deque<std::pair<uint32_t, uint64_t>> sendQueue; // (flow, bytes not yet in the socket)
    std::deque<std::pair<uint32_t, uint64_t>> recvQueue; // (flow, bytes not yet received)
    std::vector<uint32_t> spraying;                      // multipath flows that may claim chunks here
};

struct Flow
{
    uint32_t src;
    uint32_t dst;
    uint64_t sizeBytes;
    int64_t startNs;
    int64_t delayNs = 0; // software latency (NCCL protocol) between ready and first byte
    uint32_t depsLeft = 0;
    std::vector<uint32_t> dependents;
    std::vector<uint32_t> conns;
    uint64_t unclaimedBytes = 0;
    uint64_t recvBytes = 0;
    int64_t startedNs = -1;
    int64_t finishedNs = -1;
};

class FlowDriver
{
  public:
    // Fabric -------------------------------------------------------------------------------
    void BuildLeafSpine(uint32_t nHosts,
                        uint32_t hostsPerLeaf,
                        uint32_t nSpines,
                        double nicGbps,
                        double uplinkGbps,
                        int64_t hopLatencyNs,
                        uint32_t mtuBytes,
                        uint32_t queuePackets,
                        uint32_t ecnMinPackets,
                        uint32_t ecnMaxPackets,
                        bool useEcn)
    {
        using namespace ns3;
        m_nHosts = nHosts;
        m_hostsPerLeaf = hostsPerLeaf;
        m_nSpines = std::max<uint32_t>(nSpines, 1);
        uint32_t nLeaves = (nHosts + hostsPerLeaf - 1) / hostsPerLeaf;
        m_hosts.Create(nHosts);
        m_leaves.Create(nLeaves);
        m_spines.Create(nLeaves > 1 ? m_nSpines : 0);

        Ipv4StaticRoutingHelper staticRouting;
        InternetStackHelper stack;
        stack.SetRoutingHelper(staticRouting);
        stack.Install(m_hosts);
        stack.Install(m_leaves);
        stack.Install(m_spines);

        // Two strict-priority bands per port: pure ACKs (sent by receiver sockets, priority 6)
        // jump the data queue, as RDMA NICs' ACK/CNP traffic does; data sits in a RED queue
        // that ECN-marks above the thresholds (DCTCP's signal).
        TrafficControlHelper tch;
        uint16_t root = tch.SetRootQueueDisc("ns3::PrioQueueDisc",
                                             "Priomap", StringValue("1 1 1 1 1 1 0 1 1 1 1 1 1 1 1 1"));
        TrafficControlHelper::ClassIdList bands = tch.AddQueueDiscClasses(root, 2, "ns3::QueueDiscClass");
        tch.AddChildQueueDisc(root, bands[0], "ns3::FifoQueueDisc",
                              "MaxSize", QueueSizeValue(QueueSize(std::to_string(queuePackets) + "p")));
        tch.AddChildQueueDisc(root, bands[1], "ns3::RedQueueDisc",
                              "MaxSize", QueueSizeValue(QueueSize(std::to_string(queuePackets) + "p")),
                              "MinTh", DoubleValue(ecnMinPackets),
                              "MaxTh", DoubleValue(ecnMaxPackets),
                              "QW", DoubleValue(1.0),
                              "UseEcn", BooleanValue(useEcn),
                              "UseHardDrop", BooleanValue(false),
                              "MeanPktSize", UintegerValue(mtuBytes));

        // Host NICs serve their queue pairs round-robin, as RDMA NICs arbitrate between QPs
        // (a FIFO would let one connection's whole window pass before the next one's). Fair
        // queueing per 5-tuple does that; it ECN-marks above a sojourn time equal to
        // ecnMinPackets full frames at NIC rate (DCTCP's K), and keeps ACK flows sparse.
        TrafficControlHelper hostTch;
        hostTch.SetRootQueueDisc(
            "ns3::FqCoDelQueueDisc",
            "MaxSize", QueueSizeValue(QueueSize(std::to_string(queuePackets) + "p")),
            "UseEcn", BooleanValue(useEcn),
            "Flows", UintegerValue(4096),
            "Target", StringValue("100ms"),
            "Interval", StringValue("1000ms"),
            "CeThreshold", TimeValue(NanoSeconds(int64_t(ecnMinPackets * mtuBytes * 8 / nicGbps))));

        auto link = [&](Ptr<Node> a, Ptr<Node> b, double gbps) {
            PointToPointHelper p2p;
            p2p.SetDeviceAttribute("DataRate", DataRateValue(DataRate(uint64_t(gbps * 1e9))));
            p2p.SetDeviceAttribute("Mtu", UintegerValue(mtuBytes));
            p2p.SetChannelAttribute("Delay", TimeValue(NanoSeconds(hopLatencyNs)));
            p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", StringValue("2p"));
            NetDeviceContainer devs = p2p.Install(a, b);
            bool hostSide = a->GetId() < m_hosts.GetN() && m_hosts.Get(a->GetId()) == a;
            (hostSide ? hostTch : tch).Install(devs.Get(0));
            tch.Install(devs.Get(1));
            Ipv4AddressHelper addr;
            uint32_t base = 0xAC100000u + 4u * m_nLinks++; // 172.16.0.0/12, one /30 per link
            addr.SetBase(Ipv4Address(base), Ipv4Mask("255.255.255.252"));
            return addr.Assign(devs);
        };

        // host <-> leaf; the host's NIC also carries one alias address per spine
        m_hostLeafIf.assign(nHosts, 0);
        for (uint32_t h = 0; h < nHosts; ++h)
        {
            uint32_t leaf = h / hostsPerLeaf;
            Ipv4InterfaceContainer ifs = link(m_hosts.Get(h), m_leaves.Get(leaf), nicGbps);
            Ptr<Ipv4> hip = m_hosts.Get(h)->GetObject<Ipv4>();
            uint32_t hif = ifs.Get(0).second;
            for (uint32_t s = 0; s < m_nSpines; ++s)
            {
                // a /16 per spine makes ns-3's source-address selection pick alias s for any
                // destination alias s, so data and ACKs of a sub-flow both ride spine s
                hip->AddAddress(hif, Ipv4InterfaceAddress(Alias(h, s), Ipv4Mask("255.255.0.0")));
            }
            Ptr<Ipv4StaticRouting> hr = staticRouting.GetStaticRouting(hip);
            hr->SetDefaultRoute(ifs.GetAddress(1), hif);
            m_hostLeafIf[h] = ifs.Get(1).second; // leaf-side interface index
        }
        // leaf <-> spine
        std::vector<std::vector<uint32_t>> leafUp(nLeaves, std::vector<uint32_t>(m_spines.GetN()));
        std::vector<std::vector<uint32_t>> spineDown(m_spines.GetN(), std::vector<uint32_t>(nLeaves));
        for (uint32_t l = 0; l < nLeaves; ++l)
        {
            for (uint32_t s = 0; s < m_spines.GetN(); ++s)
            {
                Ipv4InterfaceContainer ifs = link(m_leaves.Get(l), m_spines.Get(s), uplinkGbps);
                leafUp[l][s] = ifs.Get(0).second;
                spineDown[s][l] = ifs.Get(1).second;
            }
        }
        // static /32 routes: alias (d, s) goes down if d is local, else up to spine s
        for (uint32_t l = 0; l < nLeaves; ++l)
        {
            Ptr<Ipv4StaticRouting> r =
                staticRouting.GetStaticRouting(m_leaves.Get(l)->GetObject<Ipv4>());
            for (uint32_t d = 0; d < nHosts; ++d)
            {
                for (uint32_t s = 0; s < m_nSpines; ++s)
                {
                    uint32_t iface = (d / hostsPerLeaf == l) ? m_hostLeafIf[d] : leafUp[l][s];
                    r->AddHostRouteTo(Alias(d, s), iface);
                }
            }
        }
        for (uint32_t s = 0; s < m_spines.GetN(); ++s)
        {
            Ptr<Ipv4StaticRouting> r =
                staticRouting.GetStaticRouting(m_spines.Get(s)->GetObject<Ipv4>());
            for (uint32_t d = 0; d < nHosts; ++d)
            {
                r->AddHostRouteTo(Alias(d, s), spineDown[s][d / hostsPerLeaf]);
            }
        }
    }

    // Transport ----------------------------------------------------------------------------
    void SetTransport(uint64_t chunkBytes, uint64_t claimBelowBytes, uint64_t sndBufBytes)
    {
        m_chunkBytes = std::max<uint64_t>(chunkBytes, 1);
        m_claimBelowBytes = claimBelowBytes;
        m_sndBufBytes = sndBufBytes;
    }

    // Flows --------------------------------------------------------------------------------
    // The flow is ready at startNs or when its last dependency finishes, whichever is later,
    // and sends its first byte delayNs after that (NCCL's per-call / per-step software latency).
    uint32_t AddFlow(uint32_t src, uint32_t dst, uint64_t sizeBytes, int64_t startNs, int64_t delayNs)
    {
        Flow f;
        f.src = src;
        f.dst = dst;
        f.sizeBytes = sizeBytes;
        f.startNs = startNs;
        f.delayNs = std::max<int64_t>(delayNs, 0);
        m_flows.push_back(f);
        return uint32_t(m_flows.size() - 1);
    }

    // The flow uses queue pair `qp` of its (src, dst) pair, pinned to `spine`; a flow given
    // several paths sprays its bytes over them.
    void AddPath(uint32_t flow, uint32_t qp, uint32_t spine)
    {
        Flow& f = m_flows[flow];
        auto key = std::make_tuple(f.src, f.dst, qp, spine % m_nSpines);
        auto it = m_connIndex.find(key);
        uint32_t c;
        if (it == m_connIndex.end())
        {
            Connection conn;
            conn.src = f.src;
            conn.dst = f.dst;
            conn.spine = spine % m_nSpines;
            conn.port = uint16_t(1024 + (m_nextPort[f.dst]++ % 60000));
            m_conns.push_back(conn);
            c = uint32_t(m_conns.size() - 1);
            m_connIndex[key] = c;
        }
        else
        {
            c = it->second;
        }
        f.conns.push_back(c);
    }

    void AddDependency(uint32_t flow, uint32_t dependsOn)
    {
        m_flows[dependsOn].dependents.push_back(flow);
        m_flows[flow].depsLeft++;
    }

    // Connect every queue pair during [0, warmupNs), then run the flows (their times are
    // reported relative to warmupNs) until all are done or stopNs passes. Returns the
    // number of unfinished flows, or -1 if some connection failed to open during warm-up.
    int64_t Run(int64_t warmupNs, int64_t stopNs)
    {
        using namespace ns3;
        m_warmupNs = warmupNs;
        Config::ConnectWithoutContextFailSafe(
            "/NodeList/*/$ns3::TrafficControlLayer/RootQueueDiscList/*/Drop",
            MakeCallback(&FlowDriver::CountDrop, this));
        for (uint32_t c = 0; c < m_conns.size(); ++c)
        {
            // as an event: nodes (and their queue discs) initialize when the simulation starts
            Simulator::Schedule(NanoSeconds(0), &FlowDriver::Open, this, c);
        }
        Simulator::Stop(NanoSeconds(warmupNs));
        Simulator::Run();
        for (const Connection& c : m_conns)
        {
            if (!c.connected)
            {
                return -1;
            }
        }
        m_drops = 0;
        for (uint32_t i = 0; i < m_flows.size(); ++i)
        {
            if (m_flows[i].depsLeft == 0)
            {
                Simulator::Schedule(NanoSeconds(m_flows[i].startNs + m_flows[i].delayNs),
                                    &FlowDriver::StartFlow, this, i);
            }
        }
        Simulator::Stop(NanoSeconds(stopNs));
        Simulator::Run();
        int64_t unfinished = 0;
        for (const Flow& f : m_flows)
        {
            unfinished += f.finishedNs < 0 ? 1 : 0;
        }
        return unfinished;
    }

    int64_t StartedNs(uint32_t flow) const { return m_flows[flow].startedNs - m_warmupNs; }
    int64_t FinishedNs(uint32_t flow) const { return m_flows[flow].finishedNs - m_warmupNs; }
    uint64_t ReceivedBytes(uint32_t flow) const { return m_flows[flow].recvBytes; }
    uint64_t Drops() const { return m_drops; }
    uint32_t Connections() const { return uint32_t(m_conns.size()); }

    static ns3::Ipv4Address Alias(uint32_t host, uint32_t spine)
    {
        // 10.(spine+1).x.y with x.y = host+1: one address per (host, path)
        return ns3::Ipv4Address(0x0A000000u | ((spine + 1) << 16) | ((host + 1) & 0xFFFFu));
    }

  private:
    void CountDrop(ns3::Ptr<const ns3::QueueDiscItem>) { ++m_drops; }

    void Open(uint32_t c)
    {
        using namespace ns3;
        Connection& conn = m_conns[c];
        TypeId tcp = TypeId::LookupByName("ns3::TcpSocketFactory");
        Ptr<Socket> rx = Socket::CreateSocket(m_hosts.Get(conn.dst), tcp);
        rx->SetPriority(kAckPriority);
        rx->Bind(InetSocketAddress(Alias(conn.dst, conn.spine), conn.port));
        rx->Listen();
        rx->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                              MakeCallback(&FlowDriver::HandleAccept, this));
        m_listeners.push_back(rx);
        m_portOwner[std::make_pair(m_hosts.Get(conn.dst)->GetId(), conn.port)] = c;

        conn.tx = Socket::CreateSocket(m_hosts.Get(conn.src), tcp);
        conn.tx->Bind(InetSocketAddress(Alias(conn.src, conn.spine), 0));
        m_txOwner[PeekPointer(conn.tx)] = c;
        conn.tx->SetConnectCallback(MakeCallback(&FlowDriver::HandleConnected, this),
                                    MakeCallback(&FlowDriver::HandleConnectFailed, this));
        conn.tx->SetSendCallback(MakeCallback(&FlowDriver::HandleSendSpace, this));
        conn.tx->Connect(InetSocketAddress(Alias(conn.dst, conn.spine), conn.port));
    }

    void StartFlow(uint32_t i)
    {
        Flow& f = m_flows[i];
        f.startedNs = ns3::Simulator::Now().GetNanoSeconds();
        f.unclaimedBytes = f.sizeBytes;
        if (f.sizeBytes == 0 || f.conns.empty())
        {
            Finish(i);
            return;
        }
        if (f.conns.size() == 1)
        {
            Connection& conn = m_conns[f.conns[0]];
            conn.sendQueue.emplace_back(i, f.sizeBytes);
            conn.recvQueue.emplace_back(i, f.sizeBytes);
            f.unclaimedBytes = 0;
            Pump(f.conns[0]);
            return;
        }
        for (uint32_t c : f.conns)
        {
            m_conns[c].spraying.push_back(i);
        }
        // start pumping at a flow-dependent path so that concurrent flows do not all hand
        // their first chunks to the same spine
        size_t k = f.conns.size();
        for (size_t j = 0; j < k; ++j)
        {
            Pump(f.conns[(i + j) % k]);
        }
    }

    void HandleAccept(ns3::Ptr<ns3::Socket> s, const ns3::Address& from)
    {
        ns3::Address local;
        s->GetSockName(local);
        uint16_t port = ns3::InetSocketAddress::ConvertFrom(local).GetPort();
        uint32_t node = s->GetNode()->GetId();
        m_rxOwner[ns3::PeekPointer(s)] = m_portOwner.at(std::make_pair(node, port));
        s->SetPriority(kAckPriority);
        s->SetRecvCallback(ns3::MakeCallback(&FlowDriver::HandleRead, this));
        m_accepted.push_back(s);
    }

    void HandleConnected(ns3::Ptr<ns3::Socket> s)
    {
        uint32_t c = m_txOwner.at(ns3::PeekPointer(s));
        m_conns[c].connected = true;
        Pump(c);
    }

    void HandleConnectFailed(ns3::Ptr<ns3::Socket> s)
    {
        NS_FATAL_ERROR("phantora ns-3 driver: TCP connect failed");
    }

    void HandleSendSpace(ns3::Ptr<ns3::Socket> s, uint32_t)
    {
        uint32_t c = m_txOwner.at(ns3::PeekPointer(s));
        if (m_conns[c].connected)
        {
            Pump(c);
        }
    }

    // Claim a chunk of a spraying flow for connection c, if c is not already backed up.
    bool Claim(uint32_t c)
    {
        Connection& conn = m_conns[c];
        uint32_t avail = conn.tx->GetTxAvailable();
        uint64_t buffered = avail < m_sndBufBytes ? m_sndBufBytes - avail : 0;
        if (buffered >= m_claimBelowBytes)
        {
            return false; // this path drains slowly; leave the next chunk to a faster one
        }
        while (!conn.spraying.empty())
        {
            uint32_t i = conn.spraying.front();
            Flow& f = m_flows[i];
            if (f.unclaimedBytes == 0)
            {
                conn.spraying.erase(conn.spraying.begin());
                continue;
            }
            uint64_t take = std::min(m_chunkBytes, f.unclaimedBytes);
            f.unclaimedBytes -= take;
            conn.sendQueue.emplace_back(i, take);
            conn.recvQueue.emplace_back(i, take);
            // round-robin between the flows spraying over this connection
            conn.spraying.erase(conn.spraying.begin());
            if (f.unclaimedBytes > 0)
            {
                conn.spraying.push_back(i);
            }
            return true;
        }
        return false;
    }

    void Pump(uint32_t c)
    {
        Connection& conn = m_conns[c];
        if (!conn.connected || conn.pumping)
        {
            return;
        }
        conn.pumping = true;
        PumpLoop(c);
        conn.pumping = false;
    }

    void PumpLoop(uint32_t c)
    {
        Connection& conn = m_conns[c];
        while (true)
        {
            if (conn.sendQueue.empty() && !Claim(c))
            {
                return;
            }
            uint32_t room = conn.tx->GetTxAvailable();
            if (room == 0)
            {
                return;
            }
            auto& head = conn.sendQueue.front();
            uint32_t n = uint32_t(std::min<uint64_t>({head.second, room, 1u << 20}));
            int sent = conn.tx->Send(ns3::Create<ns3::Packet>(n));
            if (sent <= 0)
            {
                return;
            }
            head.second -= uint64_t(sent);
            if (head.second == 0)
            {
                conn.sendQueue.pop_front();
            }
        }
    }

    void HandleRead(ns3::Ptr<ns3::Socket> s)
    {
        Connection& conn = m_conns[m_rxOwner.at(ns3::PeekPointer(s))];
        ns3::Ptr<ns3::Packet> p;
        while ((p = s->Recv()))
        {
            uint64_t got = p->GetSize();
            // TCP delivers in order: bytes belong to the oldest messages on the connection
            while (got > 0 && !conn.recvQueue.empty())
            {
                auto& head = conn.recvQueue.front();
                uint64_t n = std::min(got, head.second);
                head.second -= n;
                got -= n;
                Flow& f = m_flows[head.first];
                f.recvBytes += n;
                uint32_t i = head.first;
                if (head.second == 0)
                {
                    conn.recvQueue.pop_front();
                }
                if (f.finishedNs < 0 && f.recvBytes >= f.sizeBytes)
                {
                    Finish(i);
                }
            }
        }
    }

    void Finish(uint32_t i)
    {
        using namespace ns3;
        int64_t now = Simulator::Now().GetNanoSeconds();
        m_flows[i].finishedNs = now;
        for (uint32_t d : m_flows[i].dependents)
        {
            if (--m_flows[d].depsLeft == 0)
            {
                int64_t at = std::max<int64_t>(m_flows[d].startNs + m_warmupNs, now) + m_flows[d].delayNs;
                Simulator::Schedule(NanoSeconds(at - now), &FlowDriver::StartFlow, this, d);
            }
        }
    }

    static constexpr uint8_t kAckPriority = 6; // band 0 of the Priomap above
    uint32_t m_nHosts = 0;
    uint32_t m_hostsPerLeaf = 1;
    uint32_t m_nSpines = 1;
    uint32_t m_nLinks = 0;
    uint64_t m_drops = 0;
    int64_t m_warmupNs = 0;
    uint64_t m_chunkBytes = 65536;
    uint64_t m_claimBelowBytes = 131072;
    uint64_t m_sndBufBytes = 131072;
    ns3::NodeContainer m_hosts;
    ns3::NodeContainer m_leaves;
    ns3::NodeContainer m_spines;
    std::vector<uint32_t> m_hostLeafIf;
    std::vector<Flow> m_flows;
    std::vector<Connection> m_conns;
    std::map<std::tuple<uint32_t, uint32_t, uint32_t, uint32_t>, uint32_t> m_connIndex;
    std::map<uint32_t, uint32_t> m_nextPort;
    std::map<std::pair<uint32_t, uint16_t>, uint32_t> m_portOwner;
    std::unordered_map<ns3::Socket*, uint32_t> m_rxOwner;
    std::unordered_map<ns3::Socket*, uint32_t> m_txOwner;
    std::vector<ns3::Ptr<ns3::Socket>> m_listeners;
    std::vector<ns3::Ptr<ns3::Socket>> m_accepted;
};

} // namespace phantora_ns3
