package rtnl_test

import (
	"fmt"
	"log"

	"github.com/overlaynet/overlaynet/rtnl"
)

// Walk a nested attribute: IFLA_LINKINFO holds IFLA_INFO_KIND and
// IFLA_INFO_DATA, which holds the IFLA_VXLAN_* attributes. Nest returns a
// decoder over the current attribute's payload; each decoder records its
// first error (a truncated attribute, a value of the wrong size), checked
// once after its loop. Nothing here allocates.
func ExampleAttributeDecoder_nested() {
	// The attributes, encoded as the kernel sends them.
	var ae rtnl.AttributeEncoder
	ae.Uint32(rtnl.IFLA_MTU, 1450)
	info := ae.Begin(rtnl.IFLA_LINKINFO)
	ae.String(rtnl.IFLA_INFO_KIND, "vxlan")
	data := ae.Begin(rtnl.IFLA_INFO_DATA)
	ae.Uint32(rtnl.IFLA_VXLAN_ID, 42)
	ae.Uint16BE(rtnl.IFLA_VXLAN_PORT, 4789) // network byte order, as the kernel wants it
	ae.Flag(rtnl.IFLA_VXLAN_L3MISS, true)
	ae.End(data)
	ae.End(info)

	ad := rtnl.NewAttributeDecoder(ae.Bytes())
	for ad.Next() {
		switch ad.Type() {
		case rtnl.IFLA_MTU:
			fmt.Println("mtu", ad.Uint32())
		case rtnl.IFLA_LINKINFO:
			li := ad.Nest()
			for li.Next() {
				switch li.Type() {
				case rtnl.IFLA_INFO_KIND:
					fmt.Println("kind", li.String())
				case rtnl.IFLA_INFO_DATA:
					vx := li.Nest()
					for vx.Next() {
						switch vx.Type() {
						case rtnl.IFLA_VXLAN_ID:
							fmt.Println("  id", vx.Uint32())
						case rtnl.IFLA_VXLAN_PORT:
							fmt.Println("  dstport", vx.Uint16BE())
						case rtnl.IFLA_VXLAN_L3MISS:
							fmt.Println("  l3miss", vx.Flag())
						}
					}
					if err := vx.Err(); err != nil {
						log.Fatal(err)
					}
				}
			}
			if err := li.Err(); err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := ad.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// mtu 1450
	// kind vxlan
	//   id 42
	//   dstport 4789
	//   l3miss true
}
