// What the kernel says about CPU and memory: per process tree (the proxy, including every child a
// forking server like Dante spawns), for this process, and for the whole machine (to show how much
// CPU other tenants took during a measurement window).
package main

import (
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ: /proc reports CPU times in these units (100 on every Linux we run on).
const clockTicks = 100.0

// statFields returns the fields of /proc/<pid>/stat after the command name, so field N of proc(5)
// is fields[N-3]. The command name may contain spaces and parentheses; it ends at the last ')'.
func statFields(pid int) []string {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	text := string(raw)
	end := strings.LastIndexByte(text, ')')
	if end < 0 || end+2 > len(text) {
		return nil
	}
	return strings.Fields(text[end+2:])
}

func field(fields []string, n int) float64 {
	if n-3 >= len(fields) || n-3 < 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fields[n-3], 64)
	return v
}

// processTree lists roots and all their live descendants.
func processTree(roots []int) []int {
	if len(roots) == 0 {
		return nil
	}
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if f == nil {
			continue
		}
		ppid := int(field(f, 4))
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{}
	queue := append([]int{}, roots...)
	seen := map[int]bool{}
	// Bounded: each pid is visited once, and /proc lists finitely many.
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

// treeCPUSeconds sums user+system time of the tree, including children it has already reaped
// (cutime/cstime): a child that exits inside the window moves its time into its parent's
// counters, so the difference of two samples stays right.
func treeCPUSeconds(roots []int) float64 {
	total := 0.0
	for _, pid := range processTree(roots) {
		f := statFields(pid)
		if f == nil {
			continue
		}
		total += field(f, 14) + field(f, 15) + field(f, 16) + field(f, 17)
	}
	return total / clockTicks
}

func selfCPUSeconds() float64 {
	f := statFields(os.Getpid())
	return (field(f, 14) + field(f, 15)) / clockTicks
}

// Memory of a process tree in KiB: RSS (VmRSS) and PSS (shared pages split among the processes
// sharing them: the honest sum for a server that forks children sharing its text and heap).
type memory struct {
	RSSKiB    float64 `json:"rssKiB"`
	PSSKiB    float64 `json:"pssKiB"`
	Processes int     `json:"processes"`
}

func readKiB(path, key string) float64 {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, key) {
			parts := strings.Fields(line[len(key):])
			if len(parts) > 0 {
				v, _ := strconv.ParseFloat(parts[0], 64)
				return v
			}
		}
	}
	return 0
}

func treeMemory(roots []int) memory {
	m := memory{}
	for _, pid := range processTree(roots) {
		base := "/proc/" + strconv.Itoa(pid)
		m.RSSKiB += readKiB(base+"/status", "VmRSS:")
		m.PSSKiB += readKiB(base+"/smaps_rollup", "Pss:")
		m.Processes++
	}
	return m
}

// machineCPU is the first line of /proc/stat in seconds: busy (everything but idle and iowait),
// steal (time a hypervisor gave our vCPUs to someone else) and total.
type machineCPU struct {
	busy, steal, total float64
}

func readMachineCPU() machineCPU {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line := strings.SplitN(string(raw), "\n", 2)[0]
	parts := strings.Fields(line)
	values := make([]float64, 0, len(parts))
	for _, p := range parts[1:] {
		v, _ := strconv.ParseFloat(p, 64)
		values = append(values, v)
	}
	total := 0.0
	// user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
	for i, v := range values {
		if i < 8 {
			total += v
		}
	}
	get := func(i int) float64 {
		if i < len(values) {
			return values[i]
		}
		return 0
	}
	idle := get(3) + get(4)
	return machineCPU{busy: (total - idle) / clockTicks, steal: get(7) / clockTicks, total: total / clockTicks}
}

// cpuWindow samples every counter at the start of a measurement window and reports the deltas.
type cpuWindow struct {
	proxyRoots, auxRoots []int
	proxy, aux, self     float64
	machine              machineCPU
}

type cpuReport struct {
	ProxyCPUSeconds float64 `json:"proxyCpuSeconds"`
	AuxCPUSeconds   float64 `json:"auxCpuSeconds"`
	LoadgenCores    float64 `json:"loadgenCores"`
	ProxyCores      float64 `json:"proxyCores"`
	ForeignCores    float64 `json:"foreignCores"`
	StealPercent    float64 `json:"stealPercent"`
}

func startCPUWindow(proxyRoots, auxRoots []int) *cpuWindow {
	return &cpuWindow{
		proxyRoots: proxyRoots, auxRoots: auxRoots,
		proxy: treeCPUSeconds(proxyRoots), aux: treeCPUSeconds(auxRoots),
		self: selfCPUSeconds(), machine: readMachineCPU(),
	}
}

func (w *cpuWindow) finish(elapsed float64) cpuReport {
	proxy := treeCPUSeconds(w.proxyRoots) - w.proxy
	aux := treeCPUSeconds(w.auxRoots) - w.aux
	self := selfCPUSeconds() - w.self
	m := readMachineCPU()
	busy := m.busy - w.machine.busy
	total := m.total - w.machine.total
	r := cpuReport{ProxyCPUSeconds: proxy, AuxCPUSeconds: aux}
	if elapsed > 0 {
		r.LoadgenCores = self / elapsed
		r.ProxyCores = proxy / elapsed
		// Everything the machine did that was not us: other tenants, the noise indicator.
		r.ForeignCores = maxFloat(0, (busy-proxy-aux-self)/elapsed)
	}
	if total > 0 {
		r.StealPercent = 100 * (m.steal - w.machine.steal) / total
	}
	return r
}

func maxFloat(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}
