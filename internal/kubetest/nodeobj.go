package kubetest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The API server's view of the nodes: their objects, and waiting for them.

// nodeList is the part of a NodeList the lab reads.
type nodeList struct {
	Items []NodeObject `json:"items"`
}

// NodeObject is the part of a Node object the lab reads.
type NodeObject struct {
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
		Labels      map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		PodCIDR  string   `json:"podCIDR"`
		PodCIDRs []string `json:"podCIDRs"`
		Taints   []struct {
			Key    string `json:"key"`
			Effect string `json:"effect"`
		} `json:"taints"`
	} `json:"spec"`
	Status struct {
		Conditions []NodeCondition `json:"conditions"`
		Addresses  []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
	} `json:"status"`
}

// NodeCondition is one of a Node's status conditions.
type NodeCondition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Condition returns the node's condition of type typ (Status "" if none).
func (o NodeObject) Condition(typ string) NodeCondition {
	for _, cond := range o.Status.Conditions {
		if cond.Type == typ {
			return cond
		}
	}
	return NodeCondition{Type: typ}
}

// NodeObjects returns the cluster's Node objects by name.
func (c *Cluster) NodeObjects() (map[string]NodeObject, error) {
	var list nodeList
	if err := c.getJSON("/api/v1/nodes", &list); err != nil {
		return nil, err
	}
	m := make(map[string]NodeObject, len(list.Items))
	for _, o := range list.Items {
		m[o.Metadata.Name] = o
	}
	return m, nil
}

// waitNodesRegistered waits until every node's kubelet has registered its
// Node and the controller manager has given it a podCIDR.
func (c *Cluster) waitNodesRegistered(timeout time.Duration) error {
	err := waitFor(timeout, 100*time.Millisecond, func() (error, error) {
		for _, n := range c.Nodes {
			if n.kubelet != nil && !n.kubelet.running() {
				return n.kubelet.exitErr(), nil
			}
		}
		objs, err := c.NodeObjects()
		if err != nil {
			return nil, err
		}
		var missing []string
		for _, n := range c.Nodes {
			if o, ok := objs[n.Name]; !ok {
				missing = append(missing, n.Name+" (not registered)")
			} else if o.Spec.PodCIDR == "" && !c.opts.NoPodCIDRs {
				missing = append(missing, n.Name+" (no podCIDR)")
			}
		}
		if missing != nil {
			return nil, fmt.Errorf("waiting for %s", strings.Join(missing, ", "))
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("kubetest: nodes: %w", err)
	}
	return nil
}

// WaitNodesReady waits (up to a minute) until every node is Ready (but
// those whose Node DeleteNode deleted).
func (c *Cluster) WaitNodesReady(t testing.TB) {
	t.Helper()
	Poll(t, 60*time.Second, "kubetest: nodes Ready", func() error {
		objs, err := c.NodeObjects()
		if err != nil {
			return err
		}
		var notReady []string
		for _, n := range c.Nodes {
			n.mu.Lock()
			deleted := n.deleted
			n.mu.Unlock()
			if deleted {
				continue
			}
			if cond := objs[n.Name].Condition("Ready"); cond.Status != "True" {
				notReady = append(notReady, fmt.Sprintf("%s: %s %s", n.Name, cond.Reason, cond.Message))
			}
		}
		if notReady != nil {
			return fmt.Errorf("not Ready: %s", strings.Join(notReady, "; "))
		}
		return nil
	})
}

// WaitNodeRegistered waits until n's Node exists with a podCIDR and
// InternalIP n.IP (after RestartKubelet or SetIP, say).
func (c *Cluster) WaitNodeRegistered(t testing.TB, n *Node) {
	t.Helper()
	Poll(t, 60*time.Second, "kubetest: node "+n.Name+" registered", func() error {
		var o NodeObject
		if err := c.getJSON("/api/v1/nodes/"+n.Name, &o); err != nil {
			return err
		}
		if o.Spec.PodCIDR == "" {
			return fmt.Errorf("no podCIDR")
		}
		for _, a := range o.Status.Addresses {
			if a.Type == "InternalIP" && a.Address == n.IP.String() {
				return nil
			}
		}
		return fmt.Errorf("addresses %+v, want InternalIP %s", o.Status.Addresses, n.IP)
	})
}

// DeleteNode deletes n's Node (kubectl delete node), as an operator
// removing a node does; n keeps running (its kubelet does not register
// again until RestartKubelet) and WaitNodesReady leaves it out.
func (c *Cluster) DeleteNode(t testing.TB, n *Node) {
	t.Helper()
	c.Kubectl(t, "delete", "node", n.Name)
	n.mu.Lock()
	n.deleted = true
	n.mu.Unlock()
}

// PodCIDR returns the node's podCIDR as the API server has it.
func (n *Node) PodCIDR(t testing.TB) string {
	t.Helper()
	objs, err := n.c.NodeObjects()
	if err != nil {
		t.Fatal(err)
	}
	return objs[n.Name].Spec.PodCIDR
}
